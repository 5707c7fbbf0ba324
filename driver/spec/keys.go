package spec

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// User is one account of the guest image that receives the keypair.
type User struct {
	Name string
	UID  int
	GID  int
	Home string // absolute, inside the guest

	shell string
}

// commonDefaultUsers are the accounts cloud images create for the first
// login, in the order they are preferred when an image has several.
var commonDefaultUsers = []string{"debian", "ubuntu", "cloud-user", "centos", "fedora", "ec2-user", "rocky", "almalinux", "admin"}

// ParsePasswd reads /etc/passwd content; malformed lines are skipped (the
// file comes from an untrusted image).
func ParsePasswd(data []byte) []User {
	var out []User
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 7 || f[0] == "" {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || uid < 0 || gid < 0 || !path.IsAbs(f[5]) || strings.ContainsFunc(f[0]+f[5], isControl) {
			continue
		}
		u := User{Name: f[0], UID: uid, GID: gid, Home: path.Clean(f[5])}
		u.shell = f[6]
		out = append(out, u)
	}
	return out
}

// DefaultUser picks the image's first-login account: preferred when it
// exists, else a well-known cloud user name, else the lowest uid in
// [1000, 60000) with a login shell. ok is false when there is none.
func DefaultUser(users []User, preferred string) (User, bool) {
	byName := map[string]User{}
	for _, u := range users {
		if _, dup := byName[u.Name]; !dup {
			byName[u.Name] = u
		}
	}
	if preferred != "" {
		if u, ok := byName[preferred]; ok && u.UID != 0 {
			return u, true
		}
	}
	for _, n := range commonDefaultUsers {
		if u, ok := byName[n]; ok && u.UID >= 1000 {
			return u, true
		}
	}
	var best User
	found := false
	for _, u := range users {
		if u.UID < 1000 || u.UID >= 60000 || strings.HasSuffix(u.shell, "nologin") || strings.HasSuffix(u.shell, "/false") {
			continue
		}
		if !found || u.UID < best.UID {
			best, found = u, true
		}
	}
	return best, found
}

// MergeKeys appends keys missing from existing (an authorized_keys file the
// image already carries), keeping the image's lines first.
func MergeKeys(existing []byte, keys []string) []byte {
	have := map[string]bool{}
	var b bytes.Buffer
	for _, l := range strings.Split(string(existing), "\n") {
		t := strings.TrimSpace(l)
		if t == "" {
			continue
		}
		have[t] = true
		b.WriteString(t)
		b.WriteByte('\n')
	}
	for _, k := range keys {
		t := strings.TrimSpace(k)
		if t == "" || have[t] {
			continue
		}
		have[t] = true
		b.WriteString(t)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// KeyFile is one authorized_keys file to place in the guest.
type KeyFile struct {
	User    User
	Content []byte
}

// AuthorizedKeysTar builds the archive CopyToContainer extracts at "/":
// <home>/.ssh (0700) and <home>/.ssh/authorized_keys (0600), owned by the
// user, as sshd's StrictModes requires. The home directory itself is not in
// the archive, so the image's ownership and mode of it are left alone.
func AuthorizedKeysTar(files []KeyFile, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		home := strings.TrimPrefix(path.Clean(f.User.Home), "/")
		if home == "" || strings.HasPrefix(home, "..") || strings.ContainsFunc(home, isControl) {
			return nil, fmt.Errorf("%w: home %q of user %s", ErrInvalid, f.User.Home, f.User.Name)
		}
		dir := home + "/.ssh"
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o700, Uid: f.User.UID, Gid: f.User.GID, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, fmt.Errorf("tar dir %s: %w", dir, err)
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dir + "/authorized_keys", Mode: 0o600, Uid: f.User.UID, Gid: f.User.GID, Size: int64(len(f.Content)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, fmt.Errorf("tar authorized_keys for %s: %w", f.User.Name, err)
		}
		if _, err := tw.Write(f.Content); err != nil {
			return nil, fmt.Errorf("tar authorized_keys for %s: %w", f.User.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close keys tar: %w", err)
	}
	return buf.Bytes(), nil
}

// isControl rejects bytes no sane account name or home directory carries
// (NUL, newlines) and that tar headers cannot encode.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
