package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func fixedEnv() []LoadOption {
	return []LoadOption{
		WithHostname(func() (string, error) { return "machine", nil }),
		WithMyIP(func() (string, error) { return "198.51.100.7", nil }),
	}
}

func parse(t *testing.T, name, text string) *File {
	t.Helper()
	f, err := Parse(name, strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	return f
}

func texts(vs []Value) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Text)
	}
	return out
}

func TestParseSyntax(t *testing.T) {
	f := parse(t, "a.conf", "\uFEFF# comment\n; other comment\n[DEFAULT]\n"+
		"a = 1\n"+
		"b: two words \n"+
		"c = x=y:z\n"+
		"d: p=q\n"+
		"e = \"quoted \"\n"+
		"f = 'single'\n"+
		"g = \"mismatched'\n"+
		"h = value # not a comment\n"+
		"i = first\n  second\n\tthird\n"+
		"j =\n"+
		"multi = one\nmulti = two\n"+
		"\n[MyGroup]\nk = v\n[mygroup]\nl = w\n")
	cases := map[string][]string{
		"a": {"1"}, "b": {"two words"}, "c": {"x=y:z"}, "d": {"p=q"}, "e": {"quoted "},
		"f": {"single"}, "g": {"\"mismatched'"}, "h": {"value # not a comment"},
		"i": {"first\nsecond\nthird"}, "j": {""}, "multi": {"one", "two"},
	}
	for k, want := range cases {
		if got := texts(f.Values("DEFAULT", k)); !reflect.DeepEqual(got, want) {
			t.Errorf("DEFAULT.%s = %q, want %q", k, got, want)
		}
	}
	if got := texts(f.Values("mygroup", "k")); !reflect.DeepEqual(got, []string{"v"}) {
		t.Errorf("[MyGroup] not normalized to mygroup: %q", got)
	}
	if got := texts(f.Values("MYGROUP", "l")); !reflect.DeepEqual(got, []string{"w"}) {
		t.Errorf("lookup by upper-case group failed: %q", got)
	}
	if v := f.Values("DEFAULT", "i")[0]; v.Line != 12 || v.File != "a.conf" {
		t.Errorf("location of i = %s, want a.conf:12", v.Where())
	}
}

func TestDefaultIsCaseSensitive(t *testing.T) {
	f := parse(t, "x", "[default]\nhost = lower\n")
	if len(f.Values(DefaultGroup, "host")) != 0 {
		t.Fatal("[default] must not be [DEFAULT]")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ text, wantLine, wantMsg string }{
		{"key = v\n", "x.conf:1", "section must be started"},
		{"[DEFAULT]\n\n  indented\n", "x.conf:3", "unexpected continuation"},
		{"[DEFAULT]\n[broken\n", "x.conf:2", "must end with ]"},
		{"[DEFAULT]\n[]\n", "x.conf:2", "empty section name"},
		{"[DEFAULT]\na = 1\njunk line\n", "x.conf:3", "no ':' or '='"},
		{"[DEFAULT]\n= v\n", "x.conf:2", "key cannot be empty"},
		{"[DEFAULT]\n# comment ends the value\n   orphan\n", "x.conf:3", "unexpected continuation"},
	}
	for _, c := range cases {
		_, err := Parse("x.conf", strings.NewReader(c.text))
		if err == nil {
			t.Errorf("%q: no error", c.text)
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v does not wrap ErrSyntax", c.text, err)
		}
		if !strings.HasPrefix(err.Error(), c.wantLine+": ") || !strings.Contains(err.Error(), c.wantMsg) {
			t.Errorf("%q: error %q, want %s ... %s", c.text, err, c.wantLine, c.wantMsg)
		}
	}
}

func TestLoadMinimalDefaults(t *testing.T) {
	cfg, err := Load([]string{"testdata/minimal.conf"}, fixedEnv()...)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Default
	if d.Host != "cmp1" || d.ReportInterval != 10 || d.ReservedHostMemoryMB != 512 ||
		d.ReservedHostDiskMB != 0 || d.ReservedHostCPUs != 0 || d.RPCResponseTimeout != 60 ||
		d.LongRPCTimeout != 1800 || !d.VIFPluggingIsFatal || d.VIFPluggingTimeout != 300 {
		t.Errorf("defaults wrong: %+v", d)
	}
	if d.CPUAllocationRatio != nil || d.RAMAllocationRatio != nil || d.DiskAllocationRatio != nil {
		t.Errorf("allocation ratios must default to None")
	}
	if d.InitialCPUAllocationRatio != 16.0 || d.InitialRAMAllocationRatio != 1.5 || d.InitialDiskAllocationRatio != 1.0 {
		t.Errorf("initial ratios = %v/%v/%v, want nova Zed's 16.0/1.5/1.0",
			d.InitialCPUAllocationRatio, d.InitialRAMAllocationRatio, d.InitialDiskAllocationRatio)
	}
	if d.InstancesPath != "/var/lib/nova-container-agent/instances" {
		t.Errorf("instances_path default not interpolated: %q", d.InstancesPath)
	}
	if cfg.Container.ImageStorePath != "/var/lib/nova-container-agent/images" {
		t.Errorf("[container] image_store_path = %q: $state_path must fall back to [DEFAULT]", cfg.Container.ImageStorePath)
	}
	if !reflect.DeepEqual(cfg.Placement.ValidInterfaces, []string{"internal", "public"}) {
		t.Errorf("valid_interfaces = %q", cfg.Placement.ValidInterfaces)
	}
	if cfg.Placement.ServiceType != "placement" || cfg.Neutron.ServiceType != "network" || cfg.Glance.ServiceType != "image" {
		t.Errorf("service types: %q %q %q", cfg.Placement.ServiceType, cfg.Neutron.ServiceType, cfg.Glance.ServiceType)
	}
	if cfg.OVS.IntegrationBridge != "br-int" || cfg.OVS.DatapathType != "system" || cfg.Agent.ReportInterval != 30 {
		t.Errorf("neutron defaults wrong: %+v %+v", cfg.OVS, cfg.Agent)
	}
	if cfg.Container.NeutronAgentMode != "full" {
		t.Errorf("neutron_agent_mode default %q", cfg.Container.NeutronAgentMode)
	}
}

func TestHostAndIPDefaults(t *testing.T) {
	f := parse(t, "x", "[DEFAULT]\n[placement]\nauth_type=password\nauth_url=http://k:5000\nusername=u\npassword=p\n"+
		"project_name=s\nuser_domain_name=Default\nproject_domain_name=Default\n"+
		"[neutron]\nauth_type=password\nauth_url=http://k:5000\nusername=u\npassword=p\nproject_id=abc\nuser_id=u1\n")
	cfg, err := FromFiles(Files{f}, fixedEnv()...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Default.Host != "machine" || cfg.Default.MyIP != "198.51.100.7" {
		t.Errorf("host/my_ip defaults: %q %q", cfg.Default.Host, cfg.Default.MyIP)
	}
}

func TestOVSAgentIniAsSecondFile(t *testing.T) {
	cfg, err := Load([]string{"testdata/minimal.conf", "testdata/openvswitch_agent.ini"}, fixedEnv()...)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cfg.OVS.BridgeMappingsMap()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m, map[string]string{"physnet1": "br-phys", "physnet2": "br-ex"}) {
		t.Errorf("bridge mappings %v", m)
	}
	if cfg.OVS.DatapathType != "netdev" || cfg.Agent.PollingInterval != 5 || cfg.SecurityGroup.FirewallDriver != "openvswitch" {
		t.Errorf("ini values not applied: %+v %+v %+v", cfg.OVS, cfg.Agent, cfg.SecurityGroup)
	}
	if cfg.Default.Host != "cmp1" {
		t.Errorf("empty [DEFAULT] in the second file must not reset host: %q", cfg.Default.Host)
	}
	if !reflect.DeepEqual(cfg.Files, []string{"testdata/minimal.conf", "testdata/openvswitch_agent.ini"}) {
		t.Errorf("files %q", cfg.Files)
	}
}

func TestLaterFileWinsAndMultiAccumulates(t *testing.T) {
	// A multi-valued option, checked through the binder with a private schema.
	type grp struct {
		One   string   `opt:"one"`
		Multi []string `opt:"multi" multi:"true"`
		List  []string `opt:"list"`
	}
	type root struct {
		G grp `group:"g"`
	}
	a := parse(t, "a", "[g]\none = a1\none = a2\nmulti = x\nmulti = y\nlist = p, q\n")
	b := parse(t, "b", "[G]\none = b1\nmulti = z\n")
	var r root
	if err := bind(&r, Files{a, b}); err != nil {
		t.Fatal(err)
	}
	if r.G.One != "b1" {
		t.Errorf("one = %q, want b1 (later file wins)", r.G.One)
	}
	if !reflect.DeepEqual(r.G.Multi, []string{"x", "y", "z"}) {
		t.Errorf("multi = %q, want x y z", r.G.Multi)
	}
	if !reflect.DeepEqual(r.G.List, []string{"p", "q"}) {
		t.Errorf("list = %q", r.G.List)
	}
	var r2 root
	if err := bind(&r2, Files{a}); err != nil {
		t.Fatal(err)
	}
	if r2.G.One != "a2" {
		t.Errorf("repeated single-valued key: %q, want the last, a2", r2.G.One)
	}
}

func TestInterpolation(t *testing.T) {
	type dflt struct {
		Host  string   `opt:"host" default:"h0"`
		State string   `opt:"state_path" default:"/var/lib/x"`
		Empty *float64 `opt:"none_opt"`
	}
	type grp struct {
		Host    string `opt:"host"`
		A       string `opt:"a"`
		B       string `opt:"b"`
		C       string `opt:"c"`
		D       string `opt:"d"`
		E       string `opt:"e"`
		F       string `opt:"f"`
		G       string `opt:"g"`
		Cyc1    string `opt:"cyc1"`
		Cyc2    string `opt:"cyc2"`
		Unknown string `opt:"unknown"`
	}
	type root struct {
		D dflt `group:"DEFAULT"`
		G grp  `group:"grp"`
	}
	f := parse(t, "i.conf", "[DEFAULT]\nhost = dhost\n[grp]\nhost = ghost\n"+
		"a = $host/${host}\n"+ // current group wins
		"b = $state_path/x\n"+ // falls back to DEFAULT
		"c = ${DEFAULT.host}:$grp.host\n"+ // explicit groups
		"d = cost $$5 and \\$6 and $ alone and $1\n"+
		"e = [$none_opt]\n"+ // None substitutes as ""
		"f = $a+\n"+ // recursive
		"g = ${not closed\n")
	var r root
	if err := bind(&r, Files{f}); err != nil {
		t.Fatal(err)
	}
	want := grp{Host: "ghost", A: "ghost/ghost", B: "/var/lib/x/x", C: "dhost:ghost",
		D: "cost $5 and $6 and $ alone and $1", E: "[]", F: "ghost/ghost+", G: "${not closed"}
	if r.G != want {
		t.Errorf("got  %+v\nwant %+v", r.G, want)
	}

	bad := parse(t, "bad.conf", "[grp]\ncyc1 = $cyc2\ncyc2 = $cyc1\n")
	err := bind(&root{}, Files{bad})
	if err == nil || !strings.Contains(err.Error(), "cycle") || !strings.Contains(err.Error(), "bad.conf:2") {
		t.Errorf("cycle: %v", err)
	}
	unk := parse(t, "unk.conf", "[grp]\nunknown = $nosuch\n")
	err = bind(&root{}, Files{unk})
	if err == nil || !strings.Contains(err.Error(), "unk.conf:2") || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("unknown var: %v", err)
	}
}

func TestTypeErrorsNameFileAndLine(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.conf")
	body, _ := os.ReadFile("testdata/minimal.conf")
	base := strings.Count(string(body), "\n")
	body = append(body, []byte("\n[DEFAULT]\nreport_interval = ten\ndebug = maybe\ncpu_allocation_ratio = x\n")...)
	if err := os.WriteFile(p, body, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{p}, fixedEnv()...)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
	at := func(n int) string { return fmt.Sprintf("(%s:%d)", p, base+n) }
	for _, want := range []string{"report_interval " + at(3), "not an integer", "debug " + at(4),
		"not a boolean", "cpu_allocation_ratio " + at(5)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestValidation(t *testing.T) {
	f := parse(t, "v.conf", "[DEFAULT]\nhost=h\nmy_ip=not-an-ip\ntransport_url=kafka://x\nreport_interval=0\n"+
		"[placement]\nauth_type=token\n[ovs]\nbridge_mappings=physnet1\ndatapath_type=dpdk\n"+
		"[agent]\ntunnel_types=vxlan\n[securitygroup]\nfirewall_driver=iptables_hybrid\n"+
		"[container]\nneutron_agent_mode=half\nmin_docker_api_version=latest\n")
	_, err := FromFiles(Files{f}, fixedEnv()...)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"[DEFAULT] my_ip", "[DEFAULT] transport_url", "[DEFAULT] report_interval",
		"[placement] auth_type", "[placement] auth_url", "[neutron] password", "[ovs] bridge_mappings",
		"[ovs] datapath_type", "[agent] tunnel_types", "[securitygroup] firewall_driver",
		"[container] neutron_agent_mode", "[container] min_docker_api_version"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validation error lacks %q", want)
		}
	}
	// glance and service_user are optional unless used.
	if strings.Contains(err.Error(), "[glance]") || strings.Contains(err.Error(), "[service_user]") {
		t.Errorf("optional sections reported: %v", err)
	}
}

func TestServiceUserRequiredWhenSending(t *testing.T) {
	body, _ := os.ReadFile("testdata/minimal.conf")
	f := parse(t, "s.conf", string(body)+"\n[service_user]\nsend_service_user_token = true\n")
	_, err := FromFiles(Files{f}, fixedEnv()...)
	if err == nil || !strings.Contains(err.Error(), "[service_user] auth_url") {
		t.Fatalf("err = %v", err)
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load([]string{"testdata/does-not-exist.conf"})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
	if _, err := Load(nil); !errors.Is(err, ErrNoConfigFile) {
		t.Fatalf("err = %v", err)
	}
}

func TestTransportURL(t *testing.T) {
	u, err := ParseTransportURL("rabbit://nova:p%40ss:w@10.0.0.1:5673,other@[fd00::1]/nova%2Fvh?ssl=0")
	if err != nil {
		t.Fatal(err)
	}
	want := []TransportHost{{"nova", "p@ss:w", "10.0.0.1", 5673}, {"other", "", "fd00::1", 0}}
	if !reflect.DeepEqual(u.Hosts, want) || u.VirtualHost != "nova/vh" {
		t.Errorf("parsed %+v", u)
	}
	got := u.AMQPURLs()
	wantURLs := []string{"amqp://nova:p%40ss%3Aw@10.0.0.1:5673/nova%2Fvh", "amqp://other:guest@[fd00::1]:5672/nova%2Fvh"}
	if !reflect.DeepEqual(got, wantURLs) {
		t.Errorf("AMQPURLs = %q, want %q", got, wantURLs)
	}
	if strings.Contains(u.Redacted(), "p@ss") {
		t.Errorf("Redacted leaks: %s", u.Redacted())
	}
	d, _ := ParseTransportURL("rabbit://")
	if got := d.AMQPURLs(); !reflect.DeepEqual(got, []string{"amqp://guest:guest@localhost:5672/"}) {
		t.Errorf("default URL %q", got)
	}
	for _, bad := range []string{"", "nohost", "kafka://x", "rabbit://h:99999/"} {
		if _, err := ParseTransportURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestAllocationRatio(t *testing.T) {
	two, zero := 2.0, 0.0
	d := Default{InitialCPUAllocationRatio: 16, InitialRAMAllocationRatio: 1.5, InitialDiskAllocationRatio: 1}
	cases := []struct {
		conf        *float64
		current     float64
		inPlacement bool
		want        float64
	}{
		{nil, 0, false, 16}, {nil, 4, true, 4}, {&two, 4, true, 2}, {&zero, 4, true, 4}, {&zero, 0, false, 16},
	}
	for _, c := range cases {
		d.CPUAllocationRatio = c.conf
		got, err := d.AllocationRatio("VCPU", c.current, c.inPlacement)
		if err != nil || got != c.want {
			t.Errorf("conf=%v current=%v in=%v: got %v, %v; want %v", c.conf, c.current, c.inPlacement, got, err, c.want)
		}
	}
	if _, err := d.AllocationRatio("CUSTOM_X", 0, false); err == nil {
		t.Error("non-standard class accepted")
	}
}

// TestSampleCoversEveryOption keeps etc/nova-container-agent.conf.sample
// honest: every option the agent reads is documented there, and the sample
// loads (with its commented defaults) into a valid configuration.
func TestSampleCoversEveryOption(t *testing.T) {
	const sample = "../../etc/nova-container-agent.conf.sample"
	body, err := os.ReadFile(sample)
	if err != nil {
		t.Fatalf("read sample: %v", err)
	}
	// Uncomment "#name = value" lines to see the documented options; lines
	// with an empty value (None) are checked for presence but not loaded.
	optLine := regexp.MustCompile(`^#([A-Za-z_][A-Za-z0-9_]*) =( (.*))?$`)
	var all, loadable strings.Builder
	for _, line := range strings.Split(string(body), "\n") {
		if m := optLine.FindStringSubmatch(line); m != nil {
			all.WriteString(line[1:] + "\n")
			if m[3] != "" {
				loadable.WriteString(line[1:] + "\n")
			}
			continue
		}
		all.WriteString(line + "\n")
		loadable.WriteString(line + "\n")
	}
	f, err := Parse(sample, strings.NewReader(all.String()))
	if err != nil {
		t.Fatalf("uncommented sample does not parse: %v", err)
	}
	reg := buildRegistry(reflect.TypeOf(Config{}))
	for g, opts := range reg {
		for name, spec := range opts {
			vs := f.Values(g, name)
			if len(vs) == 0 {
				t.Errorf("[%s] %s is not in the sample", g, name)
				continue
			}
			if spec.hasDefault && !spec.multi && vs[0].Text != spec.def {
				t.Errorf("[%s] %s: sample shows %q, default is %q", g, name, vs[0].Text, spec.def)
			}
		}
	}
	lf, err := Parse(sample, strings.NewReader(loadable.String()))
	if err != nil {
		t.Fatal(err)
	}
	min, err := ParseFile("testdata/minimal.conf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FromFiles(Files{lf, min}, fixedEnv()...); err != nil {
		t.Errorf("sample + minimal does not load: %v", err)
	}
}
