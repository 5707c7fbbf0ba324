package ext4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestACLToVFS(t *testing.T) {
	le := binary.LittleEndian
	var disk bytes.Buffer
	binary.Write(&disk, le, uint32(1))
	binary.Write(&disk, le, []uint16{aclUserObj, 6})
	binary.Write(&disk, le, []uint16{aclUser, 6})
	binary.Write(&disk, le, uint32(1234))
	binary.Write(&disk, le, []uint16{aclGroupObj, 4})
	binary.Write(&disk, le, []uint16{aclMask, 6})
	binary.Write(&disk, le, []uint16{aclOther, 4})
	got, err := aclToVFS(disk.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	// What getfattr/GNU tar show for `setfacl -m u:1234:rw` on a 0644 file.
	want := []byte{2, 0, 0, 0,
		1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		2, 0, 6, 0, 0xd2, 0x04, 0, 0,
		4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
	if !bytes.Equal(got, want) {
		t.Errorf("got % x\nwant % x", got, want)
	}
	for _, bad := range [][]byte{{}, {2, 0, 0, 0}, {1, 0, 0, 0, 2, 0, 6}, {1, 0, 0, 0, 0x40, 0, 6, 0}} {
		if _, err := aclToVFS(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("% x: %v", bad, err)
		}
	}
}
