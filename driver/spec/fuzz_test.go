package spec

import (
	"errors"
	"testing"
	"time"
)

// FuzzParsePasswd: /etc/passwd comes from an untrusted image.
func FuzzParsePasswd(f *testing.F) {
	f.Add([]byte(passwd), "debian")
	f.Add([]byte("a:b:c:d:e:f:g\n::::::\n"), "")
	f.Add([]byte("u:x:-1:5::/h:/bin/sh\n"), "u")
	f.Fuzz(func(t *testing.T, data []byte, preferred string) {
		users := ParsePasswd(data)
		for _, u := range users {
			if u.UID < 0 || u.GID < 0 || u.Home == "" || u.Home[0] != '/' {
				t.Fatalf("bad user accepted: %+v", u)
			}
		}
		if u, ok := DefaultUser(users, preferred); ok {
			if u.UID == 0 {
				t.Fatalf("root chosen as default user")
			}
			if _, err := AuthorizedKeysTar([]KeyFile{{User: u, Content: []byte("k\n")}}, time.Unix(0, 0)); err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("keys tar: %v", err)
			}
		}
	})
}

// FuzzContainer: instance descriptions come over RPC.
func FuzzContainer(f *testing.F) {
	f.Add(testUUID, "vm1", "img:1", 2, int64(512), "0-1", "/cd", "10.0.0.2", "ssh-ed25519 A")
	f.Add("x", "", "", 0, int64(0), "", "", "", "")
	f.Fuzz(func(t *testing.T, id, host, img string, vcpus int, mem int64, cpus, cd, dns, key string) {
		in := Instance{UUID: id, Hostname: host, Image: img, Flavor: Flavor{Name: "f", VCPUs: vcpus, MemoryMB: mem, DedicatedCPUs: cpus},
			ConfigDriveDir: cd, DNS: []string{dns}, AuthorizedKeys: []string{key}}
		o := DefaultOptions()
		o.SandboxImage = "nca/sandbox:1"
		o.HostCPUs = 4
		s, err := Container(in, o)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		if s.HostConfig.Privileged || s.HostConfig.Memory != mem<<20 {
			t.Fatalf("bad spec for valid input: %+v", s.HostConfig)
		}
		if _, err := Sandbox(in, o); err != nil {
			t.Fatalf("sandbox rejects what container accepts: %v", err)
		}
	})
}
