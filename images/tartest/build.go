package tartest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Need skips the test when a tool is missing, naming the Debian package that provides it.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	pkgs := map[string]string{"mkfs.ext4": "e2fsprogs", "debugfs": "e2fsprogs", "sfdisk": "fdisk", "qemu-img": "qemu-utils",
		"setfacl": "acl", "setfattr": "attr", "setcap": "libcap2-bin", "tar": "tar"}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt install %s)", tool, pkgs[tool])
		}
	}
}

// Run runs a command, failing the test with its output if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// GNUTar writes the reference layer of dir the way the project's baseline does:
// tar --numeric-owner --xattrs --xattrs-include='*' -C dir -cf out .
func GNUTar(t testing.TB, dir, out string) Set {
	t.Helper()
	Need(t, "tar")
	Run(t, "tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", dir, "-cf", out, ".")
	s, err := ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// MkfsExt4 makes a filesystem image of size bytes populated from dir (mke2fs -d), with extra
// mke2fs arguments (e.g. "-t", "ext2" or "-O", "inline_data").
func MkfsExt4(t testing.TB, dir, img string, size int64, extra ...string) {
	t.Helper()
	Need(t, "mkfs.ext4")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-q", "-F", "-E", "root_owner=0:0"}, extra...)
	args = append(args, "-d", dir, img)
	Run(t, "mkfs.ext4", args...)
}

// Layout places filesystem images in a partitioned disk.
type Layout struct {
	Label string // "dos" or "gpt"
	// Parts are the partitions in order; Image may be "" for an empty partition (e.g. BIOS boot).
	Parts []Part
}

// Part is one partition of a Layout; sizes are rounded up to MiB.
type Part struct {
	Image string
	Size  int64  // bytes; 0 = the image's size
	Type  string // sfdisk type: "83", "5" (extended), GPT GUID…
}

// WrapDisk writes a raw disk with the given partitions (sfdisk, then dd of each image at its
// offset) and returns its path. MBR layouts with more than 3 data partitions put the rest in
// logical partitions inside an extended one.
func WrapDisk(t testing.TB, dir string, l Layout) string {
	t.Helper()
	Need(t, "sfdisk")
	const mib = 1 << 20
	type placed struct {
		img        string
		start, len int64
	}
	var script strings.Builder
	fmt.Fprintf(&script, "label: %s\n", l.Label)
	var places []placed
	off := int64(mib)
	logical := l.Label == "dos" && len(l.Parts) > 3
	for i, p := range l.Parts {
		size := p.Size
		if size == 0 && p.Image != "" {
			st, err := os.Stat(p.Image)
			if err != nil {
				t.Fatal(err)
			}
			size = st.Size()
		}
		size = (size + mib - 1) / mib * mib
		if logical && i == 2 {
			// The extended partition holds every remaining partition, each after a 1 MiB EBR gap.
			var rest int64
			for _, q := range l.Parts[2:] {
				qs := q.Size
				if qs == 0 {
					st, _ := os.Stat(q.Image)
					qs = st.Size()
				}
				rest += (qs+mib-1)/mib*mib + mib
			}
			fmt.Fprintf(&script, "start=%d, size=%d, type=5\n", off/512, rest/512)
		}
		if logical && i >= 2 {
			off += mib
		}
		fmt.Fprintf(&script, "start=%d, size=%d, type=%s\n", off/512, size/512, p.Type)
		if p.Image != "" {
			places = append(places, placed{p.Image, off, size})
		}
		off += size
	}
	total := off + mib
	disk := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, total); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "--no-reread", "--no-tell-kernel", disk)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s\n%s", err, script.String(), out)
	}
	for _, p := range places {
		Run(t, "dd", "if="+p.img, "of="+disk, "bs=1M", fmt.Sprintf("seek=%d", p.start), "oflag=seek_bytes", "conv=notrunc,sparse", "status=none")
	}
	return disk
}

// QemuConvert converts a raw disk with qemu-img; args are the format options, e.g.
// ("-O", "qcow2"), ("-c", "-O", "qcow2") or ("-c", "-O", "qcow2", "-o", "compression_type=zstd").
func QemuConvert(t testing.TB, raw, out string, args ...string) {
	t.Helper()
	Need(t, "qemu-img")
	Run(t, "qemu-img", append(append([]string{"convert"}, args...), raw, out)...)
}
