package rootfs

// Family is a group of distributions sharing init, network and ssh conventions.
type Family string

// The families the rule table knows. Generic gets only the rules every systemd image needs.
const (
	FamilyDebian  Family = "debian" // Debian, Ubuntu and derivatives
	FamilyRHEL    Family = "rhel"   // RHEL, CentOS, Rocky, Alma, Fedora, Oracle Linux
	FamilyGeneric Family = "generic"
)

// Action is what a Rule does to the entries its pattern matches.
type Action string

// Rule actions.
const (
	// ActionDrop leaves the entry (and, for a directory, everything below it) out of the layer.
	ActionDrop Action = "drop"
	// ActionDropContents keeps a directory (with its metadata) but none of its content.
	ActionDropContents Action = "drop-contents"
	// ActionEmpty keeps a regular file with its metadata but no content.
	ActionEmpty Action = "empty"
	// ActionFilterFstab comments out every fstab line that needs a block device.
	ActionFilterFstab Action = "filter-fstab"
	// ActionSymlinkToFile replaces a symlink by a small regular file.
	ActionSymlinkToFile Action = "symlink-to-file"
	// ActionMask writes a symlink to /dev/null in /etc/systemd/system (appended to the stream).
	ActionMask Action = "mask"
	// ActionAdd appends a file (see Addition).
	ActionAdd Action = "add"
	// ActionDropXattr removes an extended attribute from every entry.
	ActionDropXattr Action = "drop-xattr"
	// ActionReplace reports an image entry skipped because the plan writes its own at that path
	// (e.g. a unit file where a mask symlink goes).
	ActionReplace Action = "replace"
)

// Rule applies Action to every path matching Pattern (path.Match syntax on the absolute path;
// '*' does not cross '/'). Why records the evidence, and is copied into the Result.
type Rule struct {
	Pattern string
	Action  Action
	Why     string
}

// Unit is a systemd unit to mask, with the reason.
type Unit struct {
	Name string
	Why  string
}

// Addition is a file the layer gains, appended after the walk.
type Addition struct {
	Path    string
	Content string
	When    func(Facts) bool
	Why     string
}

// Ruleset is the adaptation of one family.
type Ruleset struct {
	Rules     []Rule
	Masks     []Unit
	Additions []Addition
}

// The evidence cited below is in docs/images.md of the project's reference notes: §2.3 lists
// the units that fail in the unmodified Debian image, §5 what must change in a VM rootfs.
var commonRules = []Rule{
	{"/etc/fstab", ActionFilterFstab, "§2.3: systemd-remount-fs fails on `UUID=… / ext4` (can't find UUID); /boot mount units would wait 90 s for a device"},
	{"/boot", ActionDropContents, "§5: kernel, initramfs and grub are unused in a container (43 MB); keeping them makes linux-image upgrades run update-grub/initramfs in the container"},
	{"/lib/modules", ActionDropContents, "§5: modules cannot be loaded (no CAP_SYS_MODULE, host kernel differs); 395 MB of the 712 MB test image"},
	{"/usr/lib/modules", ActionDropContents, "§5: as /lib/modules (usrmerge layout)"},
	{"/etc/ssh/ssh_host_*", ActionDrop, "§5: every instance of the image would share the host keys; regenerated at first boot"},
	{"/etc/machine-id", ActionEmpty, "§5: per-instance identity; an empty file makes systemd derive it from container_uuid"},
	{"/var/lib/dbus/machine-id", ActionDrop, "§5: stale copy of the machine-id (lxc-ci removes it too)"},
	{"/var/lib/cloud/instance", ActionDrop, "§5: cloud-init state of the VM the image was made from; cloud-init would skip per-instance modules"},
	{"/var/lib/cloud/instances", ActionDrop, "§5: as /var/lib/cloud/instance"},
	{"/var/lib/cloud/instance*", ActionDrop, "§5: as /var/lib/cloud/instance"},
	{"/etc/resolv.conf", ActionSymlinkToFile, "§5: a symlink into /run (systemd-resolved) dangles on the tmpfs /run; Docker bind-mounts its own file over a regular one"},
	{"security.selinux", ActionDropXattr, "§7: VM SELinux labels mean nothing under the host's policy; the container runtime labels the layer itself"},
}

var commonMasks = []Unit{
	{"systemd-remount-fs.service", "§2.3: fails (`mount: /: can't find UUID=…`), / cannot be remounted in a container"},
	{"systemd-fsck-root.service", "§5: no block device to check"},
	{"systemd-fsck@.service", "§5: no block device to check"},
	{"systemd-networkd-wait-online.service", "§5: with no DHCP on the Docker bridge it blocks boot ≈ 2 min"},
	{"NetworkManager-wait-online.service", "§5: as systemd-networkd-wait-online"},
	{"serial-getty@ttyS0.service", "§2.4/§5: no serial port; masked in the measured `fixed` image"},
	{"getty@tty1.service", "§2.4/§5: no /dev/tty1; masked in the measured `fixed` image"},
	{"qemu-guest-agent.service", "§5: BindsTo a virtio-serial device that never appears"},
	{"systemd-growfs-root.service", "§5: growpart/resize: no block device to grow"},
	{"systemd-repart.service", "§5: no partition table to repartition"},
}

var cloudInitAdditions = []Addition{
	{Path: "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg", Content: "# Written by nova-container-agent: the container runtime configures the network.\nnetwork: {config: disabled}\n",
		When: func(f Facts) bool { return f.HasCloudInit }, Why: "§5: cloud-init's fallback network config would DHCP on eth0; the IP comes from the runtime"},
	{Path: "/etc/cloud/cloud.cfg.d/99-nca-container.cfg", Content: "# Written by nova-container-agent: there is no block device to grow in a container.\ngrowpart: {mode: \"off\"}\nresize_rootfs: false\n",
		When: func(f Facts) bool { return f.HasCloudInit }, Why: "§5: cc_growpart/cc_resizefs need the root block device"},
}

// sshKeygenDropIn regenerates host keys before sshd's own config test, which fails without
// keys: the ExecStartPre list is reset so ssh-keygen runs first.
const sshKeygenDropIn = `# Written by nova-container-agent: host keys were removed from the image; create them at boot.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
`

// Rules is the adaptation table, per family.
var Rules = map[Family]Ruleset{
	FamilyDebian: {
		Rules: commonRules,
		Masks: append([]Unit{
			{"networking.service", "§2.3: ifupdown `ifup lo: RTNETLINK answers: Operation not permitted` without CAP_NET_ADMIN"},
			{"ifup@.service", "§2.3: as networking.service (hotplug instances)"},
		}, commonMasks...),
		Additions: cloudInitAdditions,
	},
	FamilyRHEL: {
		Rules: commonRules,
		Masks: append([]Unit{
			{"network.service", "§5: legacy initscripts network, fails like ifupdown without CAP_NET_ADMIN"},
			{"kdump.service", "§5: needs a crash kernel and /boot, both absent"},
			{"auditd.service", "§2.2: Docker's default caps lack CAP_AUDIT_CONTROL; auditd fails"},
			{"selinux-autorelabel-mark.service", "§5: SELinux relabel must not run in the container"},
			{"selinux-autorelabel.service", "§5: SELinux relabel must not run in the container"},
		}, commonMasks...),
		Additions: cloudInitAdditions,
	},
	FamilyGeneric: {
		Rules:     commonRules,
		Masks:     commonMasks,
		Additions: cloudInitAdditions,
	},
}
