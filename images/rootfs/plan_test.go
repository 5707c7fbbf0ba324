package rootfs

import (
	"strings"
	"testing"
)

func TestFilterFstab(t *testing.T) {
	in := `# comment
UUID=abc / ext4 errors=remount-ro 0 1
LABEL=boot /boot ext4 defaults 0 2
PARTUUID=1-2 /boot/efi vfat umask=0077 0 1
/dev/vdb none swap sw 0 0
/swapfile none swap sw 0 0
tmpfs /scratch tmpfs defaults 0 0
nfs.example:/export /mnt/nfs nfs defaults 0 0
`
	out, removed := filterFstab([]byte(in))
	if removed != 5 {
		t.Errorf("removed %d lines, want 5:\n%s", removed, out)
	}
	for _, keep := range []string{"# comment\n", "\ntmpfs /scratch tmpfs", "\nnfs.example:/export /mnt/nfs"} {
		if !strings.Contains(string(out), keep) {
			t.Errorf("lost %q:\n%s", keep, out)
		}
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "UUID=") || strings.HasPrefix(line, "/dev/") || strings.HasPrefix(line, "/swapfile") {
			t.Errorf("kept %q", line)
		}
	}
}

func TestPlan(t *testing.T) {
	facts := Facts{Family: FamilyDebian, HasSystemd: true, HasCloudInit: true, SSHUnit: "ssh.service",
		ExistingDirs: map[string]bool{"/etc/cloud/cloud.cfg.d": true}}
	p := NewPlan(facts)
	for path, want := range map[string]Action{
		"/etc/ssh/ssh_host_ed25519_key": ActionDrop,
		"/var/lib/cloud/instance":       ActionDrop,
		"/var/lib/cloud/instances":      ActionDrop,
		"/boot":                         ActionDropContents,
		"/etc/fstab":                    ActionFilterFstab,
		"/etc/machine-id":               ActionEmpty,
		"/etc/resolv.conf":              ActionSymlinkToFile,
	} {
		r, ok := p.match(path)
		if !ok || r.Action != want {
			t.Errorf("%s: %v %v, want %s", path, r.Action, ok, want)
		}
	}
	for _, path := range []string{"/etc/ssh/sshd_config", "/boot2", "/var/lib/cloud/data", "/etc/fstab.d"} {
		if r, ok := p.match(path); ok {
			t.Errorf("%s matched %+v", path, r)
		}
	}
	var dirs, dropIn int
	for _, a := range p.additions {
		if a.typ == '5' {
			dirs++
		}
		if strings.HasSuffix(a.path, "10-nca-hostkeys.conf") {
			dropIn++
		}
	}
	// ssh.service.d must be created; cloud.cfg.d exists already.
	if dirs != 1 || dropIn != 1 {
		t.Errorf("additions: %d dirs, %d drop-ins: %+v", dirs, dropIn, p.additions)
	}
	if _, ok := p.replaced["/etc/systemd/system/networking.service"]; !ok {
		t.Error("networking.service not masked for Debian")
	}
	if got := NewPlan(Facts{Family: FamilyRHEL, HasSystemd: true, SSHUnit: "sshd.service", SSHKeygenHook: true}); len(got.additions) == 0 {
		t.Error("RHEL plan has no masks")
	} else if _, ok := got.replaced["/etc/systemd/system/sshd.service.d/10-nca-hostkeys.conf"]; ok {
		t.Error("RHEL image with sshd-keygen got a drop-in")
	}
	if got := NewPlan(Facts{Family: FamilyGeneric}); len(got.additions) != 0 {
		t.Errorf("no systemd, no cloud-init: additions %+v", got.additions)
	}
}
