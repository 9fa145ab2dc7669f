package importer

import (
	"strconv"
	"strings"
)

// servicesFile is where both super-servers look up port names.
const servicesFile = "/etc/services"

// serviceDB is /etc/services: port numbers by name or alias and protocol.
type serviceDB map[string]int

func dbKey(name, proto string) string { return name + "/" + proto }

// loadServices reads /etc/services through fsys; a missing file is an
// empty database, and every lookup then fails with a warning at the
// service that needed it.
func loadServices(fsys FS) serviceDB {
	db := serviceDB{}
	data, err := fsys.ReadFile(servicesFile)
	if err != nil {
		return db
	}
	for _, l := range lines(data) {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		f := fields(l)
		if len(f) < 2 {
			continue
		}
		num, proto, ok := strings.Cut(f[1], "/")
		if !ok {
			continue
		}
		port, err := strconv.Atoi(num)
		if err != nil || port < 1 || port > 65535 {
			continue
		}
		for _, name := range append([]string{f[0]}, f[2:]...) {
			// The first entry of a name wins, as getservbyname's does.
			if _, dup := db[dbKey(name, proto)]; !dup {
				db[dbKey(name, proto)] = port
			}
		}
	}
	return db
}

// port looks name up for proto ("tcp" or "udp").
func (db serviceDB) port(name, proto string) (int, bool) {
	p, ok := db[dbKey(name, proto)]
	return p, ok
}
