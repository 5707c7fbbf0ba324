package rootfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Facts is what Inspect learned about a root filesystem before the walk.
type Facts struct {
	OSID          string // os-release ID
	OSIDLike      string // os-release ID_LIKE
	VersionID     string
	PrettyName    string
	Family        Family
	HasOSRelease  bool
	HasInit       bool // /sbin/init resolves to a regular file
	HasSystemd    bool // /etc/systemd/system is a directory
	HasCloudInit  bool // /etc/cloud is a directory
	SSHUnit       string
	SSHKeygenHook bool // the sshd unit (or a drop-in, or sshd-keygen units) creates missing host keys
	// ExistingDirs lists which directories that additions go into already exist.
	ExistingDirs map[string]bool
}

// LooksLikeRoot reports whether the filesystem holds an operating system root.
func (f Facts) LooksLikeRoot() bool { return f.HasOSRelease || f.HasInit }

// Inspect reads the few files that decide the adaptation: os-release, /sbin/init, systemd and
// cloud-init presence, and how sshd gets its host keys.
func Inspect(fsys FS) (Facts, error) {
	var f Facts
	f.ExistingDirs = map[string]bool{}
	isType := func(p string, typ uint32) (bool, error) {
		n, err := fsys.Lookup(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return false, nil
			}
			return false, fmt.Errorf("inspect %s: %w", p, err)
		}
		return n.Mode&TypeMask == typ, nil
	}
	var err error
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		b, rerr := fsys.ReadFile(p, 64<<10)
		if rerr == nil {
			f.HasOSRelease = true
			parseOSRelease(b, &f)
			break
		}
		if !errors.Is(rerr, fs.ErrNotExist) {
			return f, fmt.Errorf("inspect %s: %w", p, rerr)
		}
	}
	f.Family = familyOf(f.OSID, f.OSIDLike)
	if f.HasInit, err = isType("/sbin/init", TypeRegular); err != nil {
		return f, err
	}
	if f.HasSystemd, err = isType("/etc/systemd/system", TypeDir); err != nil {
		return f, err
	}
	if f.HasCloudInit, err = isType("/etc/cloud", TypeDir); err != nil {
		return f, err
	}
	if err := inspectSSH(fsys, &f); err != nil {
		return f, err
	}
	for _, d := range []string{"/etc/cloud/cloud.cfg.d", "/etc/systemd/system/ssh.service.d", "/etc/systemd/system/sshd.service.d"} {
		ok, err := isType(d, TypeDir)
		if err != nil {
			return f, err
		}
		f.ExistingDirs[d] = ok
	}
	return f, nil
}

func parseOSRelease(b []byte, f *Facts) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			f.OSID = v
		case "ID_LIKE":
			f.OSIDLike = v
		case "VERSION_ID":
			f.VersionID = v
		case "PRETTY_NAME":
			f.PrettyName = v
		}
	}
}

func familyOf(id, like string) Family {
	for _, w := range append([]string{id}, strings.Fields(like)...) {
		switch w {
		case "debian", "ubuntu":
			return FamilyDebian
		case "rhel", "centos", "rocky", "almalinux", "fedora", "ol":
			return FamilyRHEL
		}
	}
	return FamilyGeneric
}

// unitDirs are where systemd looks for units, most specific first.
var unitDirs = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// inspectSSH finds the sshd unit and whether anything creates missing host keys: ExecStartPre
// with ssh-keygen in the unit or a drop-in (Debian images built like the test image), or the
// sshd-keygen units of the RHEL family.
func inspectSSH(fsys FS, f *Facts) error {
	for _, unit := range []string{"ssh.service", "sshd.service"} {
		for _, d := range unitDirs {
			b, err := fsys.ReadFile(path.Join(d, unit), 1<<20)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				// A masked unit (symlink to /dev/null) does not resolve inside the image.
				continue
			}
			if f.SSHUnit == "" {
				f.SSHUnit = unit
			}
			if bytes.Contains(b, []byte("ssh-keygen")) {
				f.SSHKeygenHook = true
			}
		}
		if f.SSHUnit != "" {
			break
		}
	}
	if f.SSHUnit == "" {
		return nil
	}
	for _, d := range unitDirs {
		dir := path.Join(d, f.SSHUnit+".d")
		n, err := fsys.Lookup(dir)
		if err != nil || n.Mode&TypeMask != TypeDir {
			continue
		}
		err = fsys.ReadDir(n, func(name string, _ uint64) error {
			if !strings.HasSuffix(name, ".conf") {
				return nil
			}
			b, err := fsys.ReadFile(path.Join(dir, name), 1<<20)
			if err == nil && bytes.Contains(b, []byte("ssh-keygen")) {
				f.SSHKeygenHook = true
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("inspect %s: %w", dir, err)
		}
	}
	for _, d := range unitDirs {
		for _, u := range []string{"sshd-keygen@.service", "sshd-keygen.service", "sshd-keygen.target"} {
			if _, err := fsys.Lookup(path.Join(d, u)); err == nil {
				f.SSHKeygenHook = true
			}
		}
	}
	return nil
}
