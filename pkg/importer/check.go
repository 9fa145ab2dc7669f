package importer

import (
	"errors"
	"os/user"
	"strconv"
	"strings"

	"github.com/superd/superd/pkg/config"
)

// selfCheck validates the YAML as `superd check` run as root would, with
// every user and group taken to exist (the target host's accounts are not
// this one's business), and reports each error as a warning at the origin
// of the service it concerns. It finds nothing unless the converter has a
// bug: it is a safety net, and the tests hold the converter to it.
func selfCheck(data []byte, svcs []*service, w *warnings, fallbackFile string) {
	_, err := config.Parse("import.yaml", data, config.Options{
		AsRoot:   true,
		Accounts: anyAccounts{},
		Getenv:   func(string) (string, bool) { return "", false },
	})
	if err == nil {
		return
	}
	byName := map[string]*service{}
	for _, s := range svcs {
		byName[s.name] = s
	}
	var es config.Errors
	if !errors.As(err, &es) {
		w.add(fallbackFile, 1, "the converted configuration does not pass superd check: %v", err)
		return
	}
	for _, e := range es {
		if s := serviceOf(e.Key, byName); s != nil {
			w.add(s.file, s.line, "%s: the converted service does not pass superd check: %s: %s", s.name, e.Key, e.Msg)
			continue
		}
		w.add(fallbackFile, 1, "the converted configuration does not pass superd check: %s", e.Error())
	}
}

// serviceOf finds the service a config error key (services.NAME.KEY...)
// concerns; names may contain dots, so the longest match wins.
func serviceOf(key string, byName map[string]*service) *service {
	rest, ok := strings.CutPrefix(key, "services.")
	if !ok {
		return nil
	}
	var best *service
	for name, s := range byName {
		after, ok := strings.CutPrefix(rest, name)
		if ok && (after == "" || after[0] == '.' || after[0] == '[') && (best == nil || len(name) > len(best.name)) {
			best = s
		}
	}
	return best
}

// anyAccounts is a user and group database in which every name exists.
type anyAccounts struct{}

func (anyAccounts) LookupUser(name string) (*user.User, error) {
	return &user.User{Username: name, Uid: "1000", Gid: "1000"}, nil
}

func (anyAccounts) LookupUserID(uid string) (*user.User, error) {
	if _, err := strconv.ParseUint(uid, 10, 32); err != nil {
		return nil, user.UnknownUserIdError(0)
	}
	return &user.User{Username: "u" + uid, Uid: uid, Gid: uid}, nil
}

func (anyAccounts) LookupGroup(name string) (*user.Group, error) {
	return &user.Group{Name: name, Gid: "1000"}, nil
}

func (anyAccounts) LookupGroupID(gid string) (*user.Group, error) {
	if _, err := strconv.ParseUint(gid, 10, 32); err != nil {
		return nil, user.UnknownGroupIdError(gid)
	}
	return &user.Group{Name: "g" + gid, Gid: gid}, nil
}

func (anyAccounts) GroupIDs(*user.User) ([]string, error) { return nil, nil }
