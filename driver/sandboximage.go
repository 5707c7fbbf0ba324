package driver

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/client"
	"github.com/nova-container-agent/nova-container-agent/driver/spec"
)

// Why a hand-assembled binary: the sandbox needs one process that sleeps
// forever so its network namespace lives as long as the container. There is
// no registry to pull a pause image from, and the alternatives both carry a
// dependency the agent should not have at run time: building a helper needs a
// Go toolchain on every compute host, and re-using the agent's own binary in
// a hidden mode ties the sandbox image to the agent's build (a 20+ MB layer
// re-imported on every upgrade, and impossible from a test binary). A
// 130-byte static ELF that loops on pause(2) has no libc, no loader and no
// files, is built from constants in a pure function, and its content hash
// names the image tag, so the import happens once per host and only again if
// these bytes change.

// pauseCodeAMD64 is: loop: mov eax, 34 (SYS_pause); syscall; jmp loop.
var pauseCodeAMD64 = []byte{0xb8, 0x22, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xf7}

const elfBase = 0x400000

// PauseELF returns a static x86-64 Linux executable that calls pause(2)
// forever. As PID 1 of its pid namespace it ignores every catchable signal
// (the kernel drops signals without a handler for a namespace init), so
// the only way to end it is SIGKILL, which is what the sandbox's StopSignal
// says.
func PauseELF(goarch string) ([]byte, error) {
	if goarch != "amd64" {
		return nil, fmt.Errorf("sandbox binary for %s: %w (only amd64 is built)", goarch, ErrUnsupported)
	}
	hdrSize := binary.Size(elf.Header64{})
	phSize := binary.Size(elf.Prog64{})
	total := uint64(hdrSize + phSize + len(pauseCodeAMD64))
	h := elf.Header64{
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(elf.EM_X86_64),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     elfBase + uint64(hdrSize+phSize),
		Phoff:     uint64(hdrSize),
		Ehsize:    uint16(hdrSize),
		Phentsize: uint16(phSize),
		Phnum:     1,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	h.Ident[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	p := elf.Prog64{
		Type:   uint32(elf.PT_LOAD),
		Flags:  uint32(elf.PF_R | elf.PF_X),
		Vaddr:  elfBase,
		Paddr:  elfBase,
		Filesz: total,
		Memsz:  total,
		Align:  0x1000,
	}
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, h); err != nil {
		return nil, fmt.Errorf("encode elf header: %w", err)
	}
	if err := binary.Write(&b, binary.LittleEndian, p); err != nil {
		return nil, fmt.Errorf("encode program header: %w", err)
	}
	b.Write(pauseCodeAMD64)
	return b.Bytes(), nil
}

// SandboxImageTar returns the root filesystem of the sandbox image: only
// spec.SandboxCmd, plus the empty directories Docker bind-mounts into
// (etc for hostname/hosts/resolv.conf, proc, sys, dev).
func SandboxImageTar(goarch string) ([]byte, error) {
	bin, err := PauseELF(goarch)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	for _, d := range []string{"dev/", "etc/", "proc/", "sys/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: mtime}); err != nil {
			return nil, fmt.Errorf("sandbox tar %s: %w", d, err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: spec.SandboxCmd[1:], Mode: 0o755, Size: int64(len(bin)), ModTime: mtime}); err != nil {
		return nil, fmt.Errorf("sandbox tar binary: %w", err)
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, fmt.Errorf("sandbox tar binary: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("sandbox tar: %w", err)
	}
	return buf.Bytes(), nil
}

// SandboxImageRef returns the content-addressed tag for the sandbox image.
func SandboxImageRef(tarball []byte) string {
	sum := sha256.Sum256(tarball)
	return "nca/sandbox:" + hex.EncodeToString(sum[:])[:12]
}

// EnsureSandboxImage imports the sandbox image unless dockerd has it, and
// returns its reference.
func EnsureSandboxImage(ctx context.Context, api DockerAPI, goarch string) (string, error) {
	tarball, err := SandboxImageTar(goarch)
	if err != nil {
		return "", err
	}
	ref := SandboxImageRef(tarball)
	if _, err := api.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	} else if !errors.Is(translate(err, ""), ErrNotFound) {
		return "", fmt.Errorf("inspect sandbox image %s: %w", ref, err)
	}
	rc, err := api.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(tarball), SourceName: "-"}, ref, client.ImageImportOptions{Message: "nova-container-agent network sandbox"})
	if err != nil {
		return "", fmt.Errorf("import sandbox image %s: %w", ref, err)
	}
	defer rc.Close()
	if err := drainJSONMessages(rc); err != nil {
		return "", fmt.Errorf("import sandbox image %s: %w", ref, err)
	}
	if _, err := api.ImageInspect(ctx, ref); err != nil {
		return "", fmt.Errorf("sandbox image %s missing after import: %w", ref, err)
	}
	return ref, nil
}

// drainJSONMessages reads a Docker progress stream and returns the first
// error it reports (the HTTP status is 200 even when an import fails).
func drainJSONMessages(r io.Reader) error {
	dec := json.NewDecoder(io.LimitReader(r, 16<<20))
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("decode progress stream: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return errors.New(m.ErrorDetail.Message)
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
	}
}
