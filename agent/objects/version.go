package objects

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is an object version "X.Y". oslo treats a 3-part "X.Y.Z" as "X.Y"
// (NovaObjectSerializer._process_object retries with the first two parts).
type Version struct {
	Major, Minor int
}

// ParseVersion parses "X.Y" or "X.Y.Z" (the patch part is ignored).
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("parse object version %q: want X.Y or X.Y.Z", s)
	}
	var v Version
	var err error
	if v.Major, err = strconv.Atoi(parts[0]); err != nil || v.Major < 0 {
		return Version{}, fmt.Errorf("parse object version %q: bad major", s)
	}
	if v.Minor, err = strconv.Atoi(parts[1]); err != nil || v.Minor < 0 {
		return Version{}, fmt.Errorf("parse object version %q: bad minor", s)
	}
	if len(parts) == 3 {
		if p, err := strconv.Atoi(parts[2]); err != nil || p < 0 {
			return Version{}, fmt.Errorf("parse object version %q: bad patch", s)
		}
	}
	return v, nil
}

// String formats the version as "X.Y".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Less reports whether v is older than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	return v.Minor < w.Minor
}

// Accepts reports whether a receiver implementing local can hydrate an object sent at
// remote: same major and remote minor <= local minor (VersionedObject.obj_class_from_name).
func (local Version) Accepts(remote Version) bool {
	return local.Major == remote.Major && remote.Minor <= local.Minor
}

// ZedVersion returns the Zed (nova 26.2.2) registry version of an object class.
func ZedVersion(name string) (string, bool) {
	c, ok := zedRegistry[name]
	return c.version, ok
}

// ZedVersions returns a copy of the whole Zed registry: class name to version.
func ZedVersions() map[string]string {
	out := make(map[string]string, len(zedRegistry))
	for k, c := range zedRegistry {
		out[k] = c.version
	}
	return out
}

// Manifest returns the version manifest nova sends for class name, exactly what
// oslo's obj_tree_get_versions(name) computes: name and every class reachable through
// object fields, each at its Zed version. It is sent as object_versions with
// object_class_action_versions and object_backport_versions. The map is a fresh copy.
// ok is false when name is not a Zed class.
func Manifest(name string) (map[string]string, bool) {
	if _, ok := zedRegistry[name]; !ok {
		return nil, false
	}
	tree := map[string]string{}
	var walk func(string)
	walk = func(n string) {
		if _, seen := tree[n]; seen {
			return
		}
		c, ok := zedRegistry[n]
		if !ok {
			return
		}
		tree[n] = c.version
		for _, ch := range c.children {
			walk(ch)
		}
	}
	walk(name)
	return tree, true
}

// Compatibility is the outcome of comparing a received object's version with ours.
type Compatibility int

const (
	// Compatible: we implement this class at the same major and an equal or newer minor.
	Compatible Compatibility = iota
	// NeedsBackport: the sender's object is newer (higher minor or other major) than our
	// Zed class; a faithful Python receiver would ask conductor's object_backport_versions.
	NeedsBackport
	// Unknown: the class is not in our registry; keep the primitive as it is.
	Unknown
)

// CheckVersion classifies o against the Zed registry. Only the top-level object is judged,
// as NovaObjectSerializer does: nested objects are hydrated without backport.
func CheckVersion(o *Object) (Compatibility, error) {
	local, ok := ZedVersion(o.Name)
	if !ok {
		return Unknown, nil
	}
	lv, err := ParseVersion(local)
	if err != nil {
		return Unknown, err
	}
	rv, err := ParseVersion(o.Version)
	if err != nil {
		return Unknown, fmt.Errorf("check %s version: %w", o.Name, err)
	}
	if lv.Accepts(rv) {
		return Compatible, nil
	}
	return NeedsBackport, nil
}
