package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// TransportHost is one broker of a transport URL.
type TransportHost struct {
	Username string
	Password string
	Hostname string
	Port     int
}

// TransportURL is a parsed oslo.messaging transport_url.
type TransportURL struct {
	// Transport is the scheme, "rabbit".
	Transport string
	// Hosts are the brokers in the order written.
	Hosts []TransportHost
	// VirtualHost is the vhost without the leading slash; "" means "/".
	VirtualHost string
	// Query holds options such as ssl=1.
	Query url.Values
}

// ParseTransportURL parses rabbit://[user:pass@]host[:port][,...]/vhost?query
// the way oslo_messaging.transport.TransportURL.parse does: hosts split on
// commas, credentials before the first '@' of each host and percent-decoded,
// the vhost percent-decoded from the path.
func ParseTransportURL(s string) (*TransportURL, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" {
		return nil, fmt.Errorf("transport URL %q has no scheme://", redactURL(s))
	}
	if scheme != "rabbit" && scheme != "amqp" {
		return nil, fmt.Errorf("transport %q is not supported; use rabbit://", scheme)
	}
	t := &TransportURL{Transport: scheme, Query: url.Values{}}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		q, err := url.ParseQuery(rest[i+1:])
		if err != nil {
			return nil, fmt.Errorf("transport URL query: %w", err)
		}
		t.Query, rest = q, rest[:i]
	}
	netloc, path, _ := strings.Cut(rest, "/")
	vh, err := url.PathUnescape(path)
	if err != nil {
		return nil, fmt.Errorf("transport URL virtual host: %w", err)
	}
	t.VirtualHost = vh
	for _, h := range strings.Split(netloc, ",") {
		if h == "" {
			continue
		}
		var th TransportHost
		hostport := h
		if cred, hp, ok := strings.Cut(h, "@"); ok {
			hostport = hp
			user, pass, _ := strings.Cut(cred, ":")
			if th.Username, err = url.PathUnescape(user); err != nil {
				return nil, fmt.Errorf("transport URL username: %w", err)
			}
			if th.Password, err = url.PathUnescape(pass); err != nil {
				return nil, fmt.Errorf("transport URL password: %w", err)
			}
		}
		host, port := hostport, ""
		if strings.HasPrefix(hostport, "[") {
			end := strings.IndexByte(hostport, ']')
			if end < 0 {
				return nil, fmt.Errorf("transport URL host %q: unclosed [", hostport)
			}
			host = hostport[1:end]
			port = strings.TrimPrefix(hostport[end+1:], ":")
		} else if hh, pp, ok := strings.Cut(hostport, ":"); ok {
			host, port = hh, pp
		}
		th.Hostname = host
		if port != "" {
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("transport URL host %q: bad port %q", host, port)
			}
			th.Port = n
		}
		t.Hosts = append(t.Hosts, th)
	}
	return t, nil
}

// AMQPURLs returns one amqp:// URL per broker with oslo's fallbacks
// (guest/guest, localhost, port 5672), in the form the rabbit driver hands
// to kombu and amqp091-go accepts.
func (t *TransportURL) AMQPURLs() []string {
	hosts := t.Hosts
	if len(hosts) == 0 {
		hosts = []TransportHost{{}}
	}
	scheme := "amqp"
	if t.Query.Get("ssl") == "1" || strings.EqualFold(t.Query.Get("ssl"), "true") {
		scheme = "amqps"
	}
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		user, pass, host, port := h.Username, h.Password, h.Hostname, h.Port
		if user == "" {
			user = "guest"
		}
		if pass == "" {
			pass = "guest"
		}
		if host == "" {
			host = "localhost"
		}
		if port == 0 {
			port = 5672
		}
		u := url.URL{Scheme: scheme, User: url.UserPassword(user, pass),
			Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: "/" + t.VirtualHost,
			RawPath: "/" + url.PathEscape(t.VirtualHost)}
		out = append(out, u.String())
	}
	return out
}

// redactURL hides credentials so that an error message can be logged.
func redactURL(s string) string {
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		if i := strings.Index(s, "://"); i >= 0 && i < at {
			return s[:i+3] + "***" + s[at:]
		}
		return "***" + s[at:]
	}
	return s
}

// Redacted returns the URL with passwords replaced, for logs.
func (t *TransportURL) Redacted() string {
	parts := make([]string, 0, len(t.Hosts))
	for _, h := range t.Hosts {
		p := h.Hostname
		if h.Port != 0 {
			p = net.JoinHostPort(h.Hostname, strconv.Itoa(h.Port))
		}
		if h.Username != "" {
			p = h.Username + ":***@" + p
		}
		parts = append(parts, p)
	}
	return t.Transport + "://" + strings.Join(parts, ",") + "/" + t.VirtualHost
}
