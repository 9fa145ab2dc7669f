package config

import (
	"errors"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// fakeAccounts is a user and group database that does not depend on the
// host running the tests.
type fakeAccounts struct{}

var (
	fakeUsers = []user.User{
		{Username: "root", Uid: "0", Gid: "0"},
		{Username: "daemon", Uid: "1", Gid: "1"},
		{Username: "www-data", Uid: "33", Gid: "33"},
		{Username: "alice", Uid: "1000", Gid: "1000"},
		{Username: "nobody", Uid: "65534", Gid: "65534"},
	}
	fakeGroups = []user.Group{
		{Name: "root", Gid: "0"},
		{Name: "daemon", Gid: "1"},
		{Name: "tty", Gid: "5"},
		{Name: "www-data", Gid: "33"},
		{Name: "video", Gid: "44"},
		{Name: "alice", Gid: "1000"},
		{Name: "nogroup", Gid: "65534"},
	}
	// fakeMembers lists supplementary memberships, as /etc/group does.
	fakeMembers = map[string][]string{"alice": {"5", "44"}}
)

func (fakeAccounts) LookupUser(name string) (*user.User, error) {
	for _, u := range fakeUsers {
		if u.Username == name {
			return &u, nil
		}
	}
	return nil, user.UnknownUserError(name)
}

func (fakeAccounts) LookupUserID(uid string) (*user.User, error) {
	for _, u := range fakeUsers {
		if u.Uid == uid {
			return &u, nil
		}
	}
	n, _ := strconv.Atoi(uid)
	return nil, user.UnknownUserIdError(n)
}

func (fakeAccounts) LookupGroup(name string) (*user.Group, error) {
	for _, g := range fakeGroups {
		if g.Name == name {
			return &g, nil
		}
	}
	return nil, user.UnknownGroupError(name)
}

func (fakeAccounts) LookupGroupID(gid string) (*user.Group, error) {
	for _, g := range fakeGroups {
		if g.Gid == gid {
			return &g, nil
		}
	}
	return nil, user.UnknownGroupIdError(gid)
}

func (fakeAccounts) GroupIDs(u *user.User) ([]string, error) {
	return append([]string{u.Gid}, fakeMembers[u.Username]...), nil
}

// fakeEnv is superd's environment as pass_env sees it in tests.
func fakeEnv(name string) (string, bool) {
	v, ok := map[string]string{
		"PATH": "/opt/bin:/usr/bin",
		"LANG": "C.UTF-8",
		"TZ":   "UTC",
	}[name]
	return v, ok
}

func testOptions() Options {
	return Options{Accounts: fakeAccounts{}, Getenv: fakeEnv}
}

// errorLines parses src as superd.yaml and returns each error as a line,
// failing the test if the configuration is valid or the error is not
// Errors.
func errorLines(t *testing.T, src string, opts Options) []string {
	t.Helper()
	_, err := Parse("superd.yaml", []byte(src), opts)
	if err == nil {
		t.Fatalf("Parse accepted:\n%s", src)
	}
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Parse returned %T, not Errors: %v", err, err)
	}
	return strings.Split(es.Error(), "\n")
}

// mustParse parses src and fails the test on any error.
func mustParse(t *testing.T, src string, opts Options) *Config {
	t.Helper()
	cfg, err := Parse("superd.yaml", []byte(src), opts)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return cfg
}

// countingAccounts is fakeAccounts counting group-list lookups.
type countingAccounts struct {
	fakeAccounts
	groupLists *int
}

func (c countingAccounts) GroupIDs(u *user.User) ([]string, error) {
	*c.groupLists++
	return c.fakeAccounts.GroupIDs(u)
}
