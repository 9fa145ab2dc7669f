package config

import (
	"fmt"
	"os"
	"os/user"
	"syscall"
)

// Options tunes how a configuration is loaded; the zero value is what
// `superd check` run by an unprivileged user wants.
type Options struct {
	// AsRoot says superd runs as root: every exec service must then name
	// its user, so that running a program as root is written down.
	AsRoot bool
	// Getenv reads superd's own environment for pass_env; os.LookupEnv
	// when nil.
	Getenv func(name string) (string, bool)
	// Accounts resolves user and group names; the os/user databases when
	// nil.
	Accounts Accounts
	// Glob expands an include pattern. Load uses filepath.Glob when nil;
	// Parse follows no include when nil (the patterns are still checked),
	// so that it never reads the file system on its own.
	Glob func(pattern string) ([]string, error)
	// ReadFile reads an included file; os.ReadFile when nil. Load also
	// reads the main file with it.
	ReadFile func(name string) ([]byte, error)
	// StrictModes makes Load refuse a file (the main one or an include)
	// that is not owned by root or is writable by group or others, as sshd
	// does: a root superd runs what its configuration says, so whoever can
	// write it can run anything as root.
	StrictModes bool
}

// Accounts is the user and group database, a seam so that tests need not
// depend on the host's /etc/passwd and /etc/group. Lookups that find
// nothing return os/user's Unknown*Error types.
type Accounts interface {
	LookupUser(name string) (*user.User, error)
	LookupUserID(uid string) (*user.User, error)
	LookupGroup(name string) (*user.Group, error)
	LookupGroupID(gid string) (*user.Group, error)
	// GroupIDs lists the groups u belongs to, as os/user's GroupIds does.
	GroupIDs(u *user.User) ([]string, error)
}

// SystemAccounts is the host's user and group database, read with os/user.
type SystemAccounts struct{}

// LookupUser looks up a user by name.
func (SystemAccounts) LookupUser(name string) (*user.User, error) { return user.Lookup(name) }

// LookupUserID looks up a user by numeric id.
func (SystemAccounts) LookupUserID(uid string) (*user.User, error) { return user.LookupId(uid) }

// LookupGroup looks up a group by name.
func (SystemAccounts) LookupGroup(name string) (*user.Group, error) { return user.LookupGroup(name) }

// LookupGroupID looks up a group by numeric id.
func (SystemAccounts) LookupGroupID(gid string) (*user.Group, error) {
	return user.LookupGroupId(gid)
}

// GroupIDs lists the groups u belongs to.
func (SystemAccounts) GroupIDs(u *user.User) ([]string, error) { return u.GroupIds() }

func (o Options) withDefaults() Options {
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	if o.Accounts == nil {
		o.Accounts = SystemAccounts{}
	}
	if o.ReadFile == nil {
		o.ReadFile = os.ReadFile
	}
	if o.StrictModes {
		o.ReadFile = strictRead(o.ReadFile)
		o.StrictModes = false // wrapped once
	}
	return o
}

// strictRead wraps read with StrictModes' ownership and mode checks.
func strictRead(read func(string) ([]byte, error)) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		fi, err := os.Stat(name)
		if err != nil {
			return nil, err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 {
			return nil, fmt.Errorf("%s: refusing a configuration file owned by uid %d, not root: superd runs as root and starts what it names (chown root %s)", name, st.Uid, name)
		}
		if m := fi.Mode().Perm(); m&0o022 != 0 {
			return nil, fmt.Errorf("%s: refusing a configuration file writable by group or others (mode %04o): superd runs as root and starts what it names (chmod go-w %s)", name, m, name)
		}
		return read(name)
	}
}
