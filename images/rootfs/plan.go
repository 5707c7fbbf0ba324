package rootfs

import (
	"path"
	"slices"
	"strings"
)

// Plan is the adaptation compiled for one image: the path rules to apply while walking and the
// entries to append after it. It is pure data; Write applies it.
type Plan struct {
	Family     Family
	rules      []Rule
	dropXattrs map[string]Rule
	additions  []added
	replaced   map[string]added // existing entries at these paths are skipped: we write our own
}

type added struct {
	path    string
	typ     byte // tar type
	content string
	link    string
	action  Action
	why     string
}

// NoAdaptation is a plan that copies the filesystem unchanged.
func NoAdaptation() *Plan { return &Plan{Family: FamilyGeneric, replaced: map[string]added{}} }

// NewPlan compiles the Rules of the image's family for what Inspect found.
func NewPlan(f Facts) *Plan {
	rs, ok := Rules[f.Family]
	if !ok {
		rs = Rules[FamilyGeneric]
	}
	p := &Plan{Family: f.Family, replaced: map[string]added{}, dropXattrs: map[string]Rule{}}
	for _, r := range rs.Rules {
		if r.Action == ActionDropXattr {
			p.dropXattrs[r.Pattern] = r
			continue
		}
		p.rules = append(p.rules, r)
	}
	addDir := func(d string) {
		if f.ExistingDirs[d] || slices.ContainsFunc(p.additions, func(a added) bool { return a.path == d }) {
			return
		}
		p.additions = append(p.additions, added{path: d, typ: '5', action: ActionAdd, why: "parent of an added file"})
	}
	if f.HasSystemd {
		for _, u := range rs.Masks {
			a := added{path: "/etc/systemd/system/" + u.Name, typ: '2', link: "/dev/null", action: ActionMask, why: u.Why}
			p.additions = append(p.additions, a)
			p.replaced[a.path] = a
		}
		if f.SSHUnit != "" && !f.SSHKeygenHook {
			dir := "/etc/systemd/system/" + f.SSHUnit + ".d"
			addDir(dir)
			a := added{path: dir + "/10-nca-hostkeys.conf", typ: '0', content: sshKeygenDropIn, action: ActionAdd,
				why: "§5: host keys are removed and nothing in the image regenerates them (no ssh-keygen -A hook, no sshd-keygen units)"}
			p.additions = append(p.additions, a)
			p.replaced[a.path] = a
		}
	}
	for _, ad := range rs.Additions {
		if ad.When != nil && !ad.When(f) {
			continue
		}
		addDir(path.Dir(ad.Path))
		a := added{path: ad.Path, typ: '0', content: ad.Content, action: ActionAdd, why: ad.Why}
		p.additions = append(p.additions, a)
		p.replaced[a.path] = a
	}
	return p
}

// match returns the first rule whose pattern matches the absolute path abs.
func (p *Plan) match(abs string) (Rule, bool) {
	for _, r := range p.rules {
		if r.Pattern == abs {
			return r, true
		}
		if strings.ContainsAny(r.Pattern, "*?[") {
			if ok, _ := path.Match(r.Pattern, abs); ok {
				return r, true
			}
		}
	}
	return Rule{}, false
}

// filterFstab comments out the lines a container cannot honour: block devices by UUID, LABEL,
// PARTUUID, PARTLABEL or /dev path, swap, and the /, /boot and EFI mount points. Other lines
// (tmpfs, bind, network filesystems) are kept.
func filterFstab(b []byte) ([]byte, int) {
	var out strings.Builder
	removed := 0
	for line := range strings.Lines(string(b)) {
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			out.WriteString(line)
			continue
		}
		spec, mnt := fields[0], fields[1]
		typ := ""
		if len(fields) > 2 {
			typ = fields[2]
		}
		block := strings.HasPrefix(spec, "UUID=") || strings.HasPrefix(spec, "LABEL=") || strings.HasPrefix(spec, "PARTUUID=") ||
			strings.HasPrefix(spec, "PARTLABEL=") || strings.HasPrefix(spec, "/dev/")
		if block || typ == "swap" || mnt == "/" || mnt == "/boot" || mnt == "/boot/efi" || mnt == "/efi" {
			out.WriteString("# removed for the container (no block devices): " + line)
			if !strings.HasSuffix(line, "\n") {
				out.WriteString("\n")
			}
			removed++
			continue
		}
		out.WriteString(line)
	}
	return []byte(out.String()), removed
}
