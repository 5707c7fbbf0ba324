package snapshot

import (
	"archive/tar"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeTools stands in for sfdisk, mkfs.ext4 and qemu-img with their observable effect on files:
// sfdisk writes the MBR its script asks for, mkfs checks the tree it is given exists, qemu-img
// writes the output file. Every call is recorded.
type fakeTools struct {
	calls   []string
	stdin   []string
	failOn  string
	treeLen int // entries seen in the tree mkfs was given
}

func (f *fakeTools) Run(_ context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	f.calls = append(f.calls, name+" "+strings.Join(args, " "))
	f.stdin = append(f.stdin, string(stdin))
	if name == f.failOn {
		return nil, errors.New("exit status 1: simulated failure")
	}
	last := args[len(args)-1]
	switch name {
	case "sfdisk":
		if string(stdin) != freshTable {
			return nil, fmt.Errorf("fake sfdisk: unexpected script %q", stdin)
		}
		fh, err := os.OpenFile(last, os.O_RDWR, 0)
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		st, _ := fh.Stat()
		mbr := make([]byte, 512)
		e := mbr[446:]
		e[0], e[4] = 0x80, 0x83
		binary.LittleEndian.PutUint32(e[8:], 2048)
		binary.LittleEndian.PutUint32(e[12:], uint32(st.Size()/512-2048))
		mbr[510], mbr[511] = 0x55, 0xAA
		_, err = fh.WriteAt(mbr, 0)
		return nil, err
	case "mkfs.ext4":
		i := slices.Index(args, "-d")
		err := filepath.Walk(args[i+1], func(string, os.FileInfo, error) error { f.treeLen++; return nil })
		return nil, err
	case "qemu-img":
		return nil, os.WriteFile(last, []byte("QFI\xfb fake"), 0o644)
	}
	return nil, fmt.Errorf("fake: unknown tool %s", name)
}

func testTar(t *testing.T) []ent {
	return []ent{
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/os-release", typ: tar.TypeReg, mode: 0o644, body: "ID=debian\n"},
		{name: "usr/bin/ping", typ: tar.TypeReg, mode: 0o755, body: "ELF"},
	}
}

func TestBuildFreshWithFakeTools(t *testing.T) {
	work := t.TempDir()
	ft := &fakeTools{}
	res, err := Build(context.Background(), mkTar(t, testTar(t)...), Options{WorkDir: work, Runner: ft, RootGB: 1, skipOwners: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(res.Path)
	raw := filepath.Join(dir, "disk.raw")
	want := []string{
		"sfdisk --no-reread --no-tell-kernel -q " + raw,
		"mkfs.ext4 -q -F -b 4096 -U " + res.FilesystemUUID + " -L rootfs -N 65472 -E offset=1048576 -d " + filepath.Join(dir, "tree") + " " + raw + " 261888",
		"qemu-img convert -q -f raw -O qcow2 -o compat=1.1 -c " + raw + " " + res.Path,
	}
	if !slices.Equal(ft.calls, want) {
		t.Errorf("calls\n got %q\nwant %q", ft.calls, want)
	}
	if ft.stdin[0] != freshTable {
		t.Errorf("sfdisk stdin %q", ft.stdin[0])
	}
	if ft.treeLen != 6 { // tree, etc, os-release, usr, usr/bin, ping
		t.Errorf("mkfs saw %d tree entries", ft.treeLen)
	}
	if res.Layout.Mode != LayoutFresh || res.VMBootable || res.VirtualSize != gib || res.DiskFormat != "qcow2" || res.ContainerFormat != "bare" {
		t.Errorf("result %+v", res)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 1 || left[0].Name() != "snapshot.qcow2" {
		t.Errorf("work directory holds %v, want only the qcow2", left)
	}
	if err := res.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("after Cleanup the work dir holds %v", left)
	}
}

func TestBuildCleansUpOnErrors(t *testing.T) {
	for _, tool := range []string{"sfdisk", "mkfs.ext4", "qemu-img"} {
		t.Run(tool, func(t *testing.T) {
			work := t.TempDir()
			_, err := Build(context.Background(), mkTar(t, testTar(t)...), Options{WorkDir: work, Runner: &fakeTools{failOn: tool}, skipOwners: true})
			if err == nil || !strings.Contains(err.Error(), "simulated failure") {
				t.Fatalf("err = %v", err)
			}
			if left, _ := os.ReadDir(work); len(left) != 0 {
				t.Errorf("work dir holds %v after a %s failure", left, tool)
			}
		})
	}
	t.Run("unsafe tar", func(t *testing.T) {
		work := t.TempDir()
		_, err := Build(context.Background(), mkTar(t, ent{name: "../x", typ: tar.TypeReg, mode: 0o644}), Options{WorkDir: work, Runner: &fakeTools{}, skipOwners: true})
		if !errors.Is(err, ErrUnsafeEntry) {
			t.Fatalf("err = %v", err)
		}
		if left, _ := os.ReadDir(work); len(left) != 0 {
			t.Errorf("work dir holds %v", left)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		work := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Build(ctx, mkTar(t, testTar(t)...), Options{WorkDir: work, Runner: &fakeTools{}, skipOwners: true})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if left, _ := os.ReadDir(work); len(left) != 0 {
			t.Errorf("work dir holds %v", left)
		}
	})
}

func TestOptionsValidation(t *testing.T) {
	for name, o := range map[string]Options{
		"no workdir":       {},
		"missing workdir":  {WorkDir: "/nonexistent/nca"},
		"original no size": {WorkDir: t.TempDir(), Original: strings.NewReader("x")},
		"negative root":    {WorkDir: t.TempDir(), RootGB: -1},
	} {
		if _, err := Stage(context.Background(), strings.NewReader(""), o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestUnadapt(t *testing.T) {
	tr, dir := newTree(t)
	adds := additions()
	var cloudPath, cloudContent string
	for p, c := range adds {
		if strings.Contains(p, "disable-network") {
			cloudPath, cloudContent = p, c
		}
	}
	_, err := tr.extract(context.Background(), mkTar(t,
		ent{name: "etc/fstab", typ: tar.TypeReg, mode: 0o644, body: "# x\n" + fstabMarker + "UUID=1 / ext4 defaults 0 1\n"},
		ent{name: "etc/systemd/system/serial-getty@ttyS0.service", typ: tar.TypeSymlink, link: "/dev/null"},
		ent{name: "etc/systemd/system/networking.service", typ: tar.TypeSymlink, link: "/dev/null"},
		ent{name: "etc/systemd/system/getty@tty1.service", typ: tar.TypeSymlink, link: "/dev/null"},
		ent{name: "etc/systemd/system/ssh.service.d/" + sshDropIn, typ: tar.TypeReg, mode: 0o644, body: ncaMarker + ": host keys\n"},
		ent{name: cloudPath, typ: tar.TypeReg, mode: 0o644, body: cloudContent},
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	orig := &origState{entries: map[string]origEntry{
		// masked in the original image too: must stay
		"etc/systemd/system/getty@tty1.service": {typ: tar.TypeSymlink, link: "/dev/null"},
	}}
	actions, err := unadapt(tr, orig)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/fstab")); string(b) != "# x\nUUID=1 / ext4 defaults 0 1\n" {
		t.Errorf("fstab %q", b)
	}
	for _, gone := range []string{"etc/systemd/system/serial-getty@ttyS0.service", "etc/systemd/system/networking.service",
		"etc/systemd/system/ssh.service.d", cloudPath} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); err == nil {
			t.Errorf("%s still there", gone)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc/systemd/system/getty@tty1.service")); err != nil {
		t.Error("the original's own mask was removed")
	}
	if len(actions) != 5 {
		t.Errorf("actions %q", actions)
	}

	// fstab emptied by other means: the original's comes back
	tr2, dir2 := newTree(t)
	tr2.extract(context.Background(), mkTar(t, ent{name: "etc/fstab", typ: tar.TypeReg, mode: 0o644, body: "# empty\n"}), nil)
	if _, err := unadapt(tr2, &origState{fstab: []byte("UUID=9 / ext4 defaults 0 1\n"), entries: map[string]origEntry{}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir2, "etc/fstab")); string(b) != "UUID=9 / ext4 defaults 0 1\n" {
		t.Errorf("fstab %q", b)
	}
}
