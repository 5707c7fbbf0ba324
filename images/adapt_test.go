package images

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nova-container-agent/nova-container-agent/images/rootfs"
	"github.com/nova-container-agent/nova-container-agent/images/tartest"
)

// vmTree lays out the parts of a cloud VM image the adaptation rules are about.
func vmTree(t *testing.T, dir, osRelease string, sshKeygenHook bool) {
	w := func(p, content string) { write(t, filepath.Join(dir, p), []byte(content), 0o644) }
	w("usr/lib/os-release", osRelease)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.Symlink("../usr/lib/os-release", filepath.Join(dir, "etc/os-release"))
	w("usr/lib/systemd/systemd", "#!systemd")
	os.Chmod(filepath.Join(dir, "usr/lib/systemd/systemd"), 0o755)
	os.MkdirAll(filepath.Join(dir, "usr/sbin"), 0o755)
	os.Symlink("../lib/systemd/systemd", filepath.Join(dir, "usr/sbin/init"))
	os.Symlink("usr/sbin", filepath.Join(dir, "sbin"))
	os.Symlink("usr/lib", filepath.Join(dir, "lib"))
	w("etc/fstab", "# /etc/fstab\nUUID=0b5c-1 / ext4 errors=remount-ro 0 1\nLABEL=boot /boot ext4 defaults 0 2\n/dev/vdb none swap sw 0 0\ntmpfs /scratch tmpfs defaults 0 0\n")
	w("etc/machine-id", "0123456789abcdef0123456789abcdef\n")
	w("var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n")
	w("etc/ssh/ssh_host_rsa_key", "PRIVATE")
	w("etc/ssh/ssh_host_rsa_key.pub", "PUBLIC")
	w("etc/ssh/sshd_config", "PermitRootLogin no\n")
	w("boot/vmlinuz-6.1.0-50-amd64", strings.Repeat("k", 5000))
	w("boot/grub/grub.cfg", "menuentry")
	w("usr/lib/modules/6.1.0-50-amd64/kernel/fs/ext4.ko", strings.Repeat("m", 9000))
	w("etc/systemd/system/networking.service", "[Service]\nExecStart=/sbin/ifup -a\n")
	w("etc/systemd/system/multi-user.target.wants/.keep", "")
	w("usr/lib/systemd/system/ssh.service", "[Service]\nExecStartPre=/usr/sbin/sshd -t\nExecStart=/usr/sbin/sshd -D\n")
	if sshKeygenHook {
		w("etc/systemd/system/ssh.service.d/10-hostkeys.conf", "[Service]\nExecStartPre=/usr/bin/ssh-keygen -A\n")
	}
	w("etc/cloud/cloud.cfg", "datasource_list: [ConfigDrive]\n")
	w("var/lib/cloud/instances/i-0001/obj.pkl", "state")
	os.Symlink("/var/lib/cloud/instances/i-0001", filepath.Join(dir, "var/lib/cloud/instance"))
	w("var/lib/cloud/data/status.json", "{}")
	os.MkdirAll(filepath.Join(dir, "run/systemd/resolve"), 0o755)
	os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(dir, "etc/resolv.conf"))
}

func layerFiles(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			c, _ := io.ReadAll(tr)
			h.PAXRecords = map[string]string{"content": string(c)}
		}
		out[tartest.Normalize(h.Name)] = h
	}
}

func TestAdaptationDebian(t *testing.T) {
	tartest.Need(t, "mkfs.ext4")
	for _, hook := range []bool{false, true} {
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		vmTree(t, src, "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n", hook)
		img := filepath.Join(dir, "root.img")
		tartest.MkfsExt4(t, src, img, 32<<20, "-b", "4096")
		f, _ := os.Open(img)
		defer f.Close()
		st, _ := f.Stat()
		var buf bytes.Buffer
		res, err := Convert(context.Background(), f, st.Size(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		if res.Family != rootfs.FamilyDebian || res.OS.VersionID != "12" {
			t.Errorf("family %s, os %+v", res.Family, res.OS)
		}
		got := layerFiles(t, buf.Bytes())
		absent := []string{"etc/ssh/ssh_host_rsa_key", "etc/ssh/ssh_host_rsa_key.pub", "boot/vmlinuz-6.1.0-50-amd64",
			"boot/grub", "usr/lib/modules/6.1.0-50-amd64", "var/lib/cloud/instances", "var/lib/cloud/instance",
			"var/lib/cloud/instances/i-0001/obj.pkl", "var/lib/dbus/machine-id"}
		for _, p := range absent {
			if _, ok := got[p]; ok {
				t.Errorf("%s should have been dropped", p)
			}
		}
		for _, p := range []string{"boot", "usr/lib/modules", "etc/ssh/sshd_config", "var/lib/cloud/data/status.json", "lib", "sbin"} {
			if _, ok := got[p]; !ok {
				t.Errorf("%s should have been kept", p)
			}
		}
		if h := got["etc/machine-id"]; h == nil || h.Size != 0 || h.Typeflag != tar.TypeReg {
			t.Errorf("machine-id should be an empty file: %+v", h)
		}
		fstab := got["etc/fstab"].PAXRecords["content"]
		if strings.Contains(fstab, "\nUUID=") || strings.Contains(fstab, "\nLABEL=") || strings.Contains(fstab, "\n/dev/vdb") ||
			!strings.Contains(fstab, "\ntmpfs /scratch tmpfs") {
			t.Errorf("fstab not filtered:\n%s", fstab)
		}
		if h := got["etc/resolv.conf"]; h == nil || h.Typeflag != tar.TypeReg {
			t.Errorf("resolv.conf should be a regular file: %+v", h)
		}
		for _, u := range []string{"networking.service", "ifup@.service", "systemd-remount-fs.service", "systemd-networkd-wait-online.service",
			"serial-getty@ttyS0.service", "getty@tty1.service", "qemu-guest-agent.service", "NetworkManager-wait-online.service"} {
			h := got["etc/systemd/system/"+u]
			if h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/dev/null" {
				t.Errorf("%s not masked: %+v", u, h)
			}
		}
		if c := got["etc/cloud/cloud.cfg.d/99-disable-network-config.cfg"]; c == nil || !strings.Contains(c.PAXRecords["content"], "config: disabled") {
			t.Errorf("cloud-init network config not disabled: %+v", c)
		}
		if _, ok := got["etc/cloud/cloud.cfg.d"]; !ok {
			t.Error("cloud.cfg.d directory not created")
		}
		dropIn := got["etc/systemd/system/ssh.service.d/10-nca-hostkeys.conf"]
		if hook && dropIn != nil {
			t.Error("image has an ssh-keygen hook: no drop-in expected")
		}
		if !hook && (dropIn == nil || !strings.Contains(dropIn.PAXRecords["content"], "ssh-keygen -A")) {
			t.Errorf("ssh host-key drop-in missing: %+v", dropIn)
		}
		// Each tar name appears once: the image's networking.service was replaced, not duplicated.
		seen := map[string]int{}
		tr := tar.NewReader(bytes.NewReader(buf.Bytes()))
		for h, err := tr.Next(); err == nil; h, err = tr.Next() {
			seen[tartest.Normalize(h.Name)]++
		}
		for n, c := range seen {
			if c > 1 {
				t.Errorf("%s written %d times", n, c)
			}
		}
		if len(res.Actions) < 10 {
			t.Errorf("actions not reported: %+v", res.Actions)
		}
	}
}

func TestFamilies(t *testing.T) {
	for _, tc := range []struct {
		osRelease string
		want      rootfs.Family
	}{
		{"ID=ubuntu\nID_LIKE=debian\n", rootfs.FamilyDebian},
		{"ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n", rootfs.FamilyRHEL},
		{"ID=almalinux\nID_LIKE=\"rhel centos fedora\"\n", rootfs.FamilyRHEL},
		{"ID=alpine\n", rootfs.FamilyGeneric},
	} {
		tartest.Need(t, "mkfs.ext4")
		dir := t.TempDir()
		src := filepath.Join(dir, "src")
		vmTree(t, src, tc.osRelease, false)
		img := filepath.Join(dir, "root.img")
		tartest.MkfsExt4(t, src, img, 32<<20, "-b", "4096")
		f, _ := os.Open(img)
		st, _ := f.Stat()
		var buf bytes.Buffer
		res, err := Convert(context.Background(), f, st.Size(), &buf)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.Family != tc.want {
			t.Errorf("%q: family %s, want %s", tc.osRelease, res.Family, tc.want)
		}
		got := layerFiles(t, buf.Bytes())
		if tc.want == rootfs.FamilyRHEL {
			if _, ok := got["etc/systemd/system/kdump.service"]; !ok {
				t.Error("RHEL family: kdump.service not masked")
			}
			if _, ok := got["etc/systemd/system/networking.service"]; !ok {
				// The image's own file is kept for RHEL (only Debian masks ifupdown).
				t.Error("RHEL family: the image's networking.service should be kept as is")
			}
		}
	}
}
