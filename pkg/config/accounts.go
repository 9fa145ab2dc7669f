package config

import (
	"errors"
	"fmt"
	"os/user"
	"slices"
	"strconv"
)

type userResult struct {
	u   *user.User
	err error
}

type groupResult struct {
	g   *user.Group
	err error
}

func numeric(s string) bool { return digits(s) }

// lookupUser finds a user by name, or by id when the name is a number. A
// number that is in no database is returned as a bare uid (nil user, nil
// error): containers often run programs under such ids.
func (p *parser) lookupUser(name string) (*user.User, error) {
	if r, ok := p.users[name]; ok {
		return r.u, r.err
	}
	var u *user.User
	var err error
	if numeric(name) {
		u, err = p.opts.Accounts.LookupUserID(name)
		var unknown user.UnknownUserIdError
		if errors.As(err, &unknown) {
			u, err = nil, nil
		}
	} else {
		u, err = p.opts.Accounts.LookupUser(name)
	}
	p.users[name] = userResult{u, err}
	return u, err
}

// memberOf is the deduplicated supplementary group ids of u, looked up once
// per user: the group database is read in full for each lookup, and a
// configuration with 10,000 services may name one user in each. The slice
// is shared between services and never modified.
func (p *parser) memberOf(u *user.User) ([]uint32, error) {
	// The list includes the primary group, so the key has it too.
	key := u.Username + ":" + u.Gid
	if r, ok := p.members[key]; ok {
		return r.ids, r.err
	}
	var ids []uint32
	names, err := p.opts.Accounts.GroupIDs(u)
	if err == nil {
		ids = make([]uint32, 0, len(names))
		for _, id := range names {
			if gid, ok := parseID(id); ok && !slices.Contains(ids, gid) {
				ids = append(ids, gid)
			}
		}
	}
	ids = slices.Clip(ids) // shared: an append must copy
	p.members[key] = membersResult{ids, err}
	return ids, err
}

type membersResult struct {
	ids []uint32
	err error
}

// lookupGroup is lookupUser for groups.
func (p *parser) lookupGroup(name string) (*user.Group, error) {
	if r, ok := p.groups[name]; ok {
		return r.g, r.err
	}
	var g *user.Group
	var err error
	if numeric(name) {
		g, err = p.opts.Accounts.LookupGroupID(name)
		var unknown user.UnknownGroupIdError
		if errors.As(err, &unknown) {
			g, err = nil, nil
		}
	} else {
		g, err = p.opts.Accounts.LookupGroup(name)
	}
	p.groups[name] = groupResult{g, err}
	return g, err
}

func (p *parser) userErr(f field, name string, err error) {
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		p.errVal(f, "unknown user %q", name)
		return
	}
	p.errVal(f, "looking up user %q: %v", name, err)
}

func (p *parser) groupErr(f field, name string, err error) {
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		p.errVal(f, "unknown group %q", name)
		return
	}
	p.errVal(f, "looking up group %q: %v", name, err)
}

func parseID(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil && v != 1<<32-1
}

// uidOf reads a user (name or id) and resolves it to a uid.
func (p *parser) uidOf(f field) (int, bool) {
	name, ok := p.account(f)
	if !ok {
		return 0, false
	}
	u, err := p.lookupUser(name)
	if err != nil {
		p.userErr(f, name, err)
		return 0, false
	}
	id := name
	if u != nil {
		id = u.Uid
	}
	v, ok := parseID(id)
	if !ok {
		p.errVal(f, "user %q has id %q, which is not a valid uid", name, id)
	}
	return int(v), ok
}

// gidOf reads a group (name or id) and resolves it to a gid.
func (p *parser) gidOf(f field) (int, bool) {
	name, ok := p.account(f)
	if !ok {
		return 0, false
	}
	g, err := p.lookupGroup(name)
	if err != nil {
		p.groupErr(f, name, err)
		return 0, false
	}
	id := name
	if g != nil {
		id = g.Gid
	}
	v, ok := parseID(id)
	if !ok {
		p.errVal(f, "group %q has id %q, which is not a valid gid", name, id)
	}
	return int(v), ok
}

// credential resolves user, group and groups. The group defaults to the
// user's primary group and the supplementary groups to the user's groups
// in the group database, as login(1) and initgroups(3) would have them.
func (p *parser) credential(d *draft) *Credential {
	uf, ok := d.ok("user")
	if !ok {
		return nil
	}
	u, err := p.lookupUser(d.user)
	if err != nil {
		p.userErr(uf, d.user, err)
		return nil
	}
	c := &Credential{User: d.user}
	good := true
	if u != nil {
		c.User = u.Username
		uid, ok1 := parseID(u.Uid)
		gid, ok2 := parseID(u.Gid)
		if !ok1 || !ok2 {
			p.errVal(uf, "user %q has ids %s:%s, which are not valid", d.user, u.Uid, u.Gid)
			return nil
		}
		c.UID, c.GID = uid, gid
	} else {
		c.UID, _ = parseID(d.user)
	}
	if gf, set := d.set["group"]; set {
		gid, ok := p.gidOf(gf)
		c.GID, good = uint32(gid), good && ok
	} else if u == nil {
		p.errVal(uf, "user %s is in no user database, so it has no primary group: set group as well", d.user)
		good = false
	}
	if _, set := d.set["groups"]; set {
		c.Groups = []uint32{}
		for _, it := range d.groups {
			gid, ok := p.gidOf(it)
			good = good && ok
			if ok && !slices.Contains(c.Groups, uint32(gid)) {
				c.Groups = append(c.Groups, uint32(gid))
			}
		}
	} else if u != nil {
		ids, err := p.memberOf(u)
		if err != nil {
			p.errVal(uf, "listing the groups of user %q: %v", d.user, err)
			return nil
		}
		c.Groups = ids
	}
	if !good {
		return nil
	}
	if len(c.Groups) == 0 {
		// One spelling of "no supplementary groups", so that configs
		// compare equal across reloads.
		c.Groups = nil
	}
	key := fmt.Sprint(c.User, ":", c.UID, ":", c.GID, ":", c.Groups)
	if shared, ok := p.creds[key]; ok {
		return shared
	}
	p.creds[key] = c
	return c
}
