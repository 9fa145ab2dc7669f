// Package config turns superd's YAML configuration (SPEC §2) into a Config.
//
// Invariant: Load and Parse return either a fully defaulted, validated Config
// or every error found, each with file, line, column and key. A Config is
// immutable once returned and nothing downstream re-checks or re-defaults it:
// every service has at least one socket, exactly one of Exec, Internal and
// Redirect, a Mode its sockets allow, resolved credentials and a complete
// base environment.
//
// The YAML is walked as yaml.Node trees rather than decoded into structs so
// that every error, including duplicate keys (which yaml.v3 accepts), knows
// where it was written. The package opens no socket; the only file system
// access is reading the configuration and its includes and resolving user
// and group names.
package config
