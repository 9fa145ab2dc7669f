// Package importer converts an xinetd or inetd configuration into superd's
// YAML (SPEC §1, `superd import`).
//
// Each import runs in three steps that share nothing but plain values:
// parse (the text of xinetd.conf(5) or inetd.conf into a model of what was
// written, with the file and line of every entry and attribute), convert
// (that model, with xinetd's or inetd's own rules for defaults, ports and
// duplicates, into superd services) and emit (the services as YAML, sorted
// by name, each under a comment naming where it came from).
//
// Invariant: nothing written in the input is dropped silently. Every
// attribute is either converted or named in a Warning with its file and
// line; a service that xinetd or inetd would have refused to run is
// imported with `disabled: true` (and a warning) rather than started by
// superd for the first time. The YAML an import returns passes superd's
// own validation (config.Parse as root) whenever the users and groups it
// names exist; the import checks this itself and reports any miss as a
// warning. Imports read files only through an FS and never write any.
package importer
