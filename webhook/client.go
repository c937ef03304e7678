package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// Policy decides which addresses a webhook may reach. By default only
// public unicast addresses: loopback, private (RFC 1918, ULA), shared
// (CGNAT), link-local (and with it the cloud metadata address
// 169.254.169.254), multicast, unspecified, documentation, benchmarking
// and reserved ranges are refused. Allow lists prefixes an operator opens
// anyway (tests allow loopback).
type Policy struct {
	Allow []netip.Prefix
}

// blocked are the ranges refused beyond what netip.Addr's predicates say.
var blocked = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64: embeds an IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fd00:ec2::254/128"),
}

// ErrRefused is the error of a delivery to an address the policy refuses.
var ErrRefused = errors.New("webhook target address refused")

// Check returns nil if addr may be dialed.
func (p Policy) Check(addr netip.Addr) error {
	addr = addr.Unmap() // ::ffff:10.0.0.1 is 10.0.0.1
	for _, a := range p.Allow {
		if a.Contains(addr) {
			return nil
		}
	}
	var why string
	switch {
	case !addr.IsValid():
		why = "invalid"
	case addr.IsLoopback():
		why = "loopback"
	case addr.IsPrivate():
		why = "private"
	case addr.IsLinkLocalUnicast():
		why = "link-local"
	case addr.IsMulticast(), addr.IsLinkLocalMulticast(), addr.IsInterfaceLocalMulticast():
		why = "multicast"
	case addr.IsUnspecified():
		why = "unspecified"
	case !addr.IsGlobalUnicast():
		why = "not global unicast"
	}
	if why == "" {
		for _, b := range blocked {
			if b.Contains(addr) {
				why = "reserved"
				break
			}
		}
	}
	if why != "" {
		return fmt.Errorf("%w: %s is %s", ErrRefused, addr, why)
	}
	return nil
}

// Resolver looks host names up (net.DefaultResolver in production).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ClientOptions configure a Client.
type ClientOptions struct {
	Policy Policy
	// Timeout bounds one attempt from dial to the last byte read (default
	// 5 s: a receiver must answer 2xx within it, D34).
	Timeout time.Duration
	// MaxHead is how many bytes of the response body are kept for the
	// delivery log (default 512); at most 64 KiB are read in all.
	MaxHead int
	// Resolver defaults to net.DefaultResolver.
	Resolver Resolver
	// Control, if set, runs before every connect with the address being
	// dialed (tests use it to prove refused targets are never dialed).
	Control func(network, address string, c syscall.RawConn) error
	// TLS configures https (tests add their CA); nil is the default.
	TLS *tls.Config
	// UserAgent defaults to "verifyd-webhooks/1".
	UserAgent string
}

// Client posts webhooks. It resolves the target itself, checks every
// address against the policy before any connection is opened, dials only
// an allowed address, follows no redirects and uses no proxy.
type Client struct {
	opts ClientOptions
	http *http.Client
}

// NewClient returns a Client.
func NewClient(opts ClientOptions) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.MaxHead <= 0 {
		opts.MaxHead = 512
	}
	if opts.Resolver == nil {
		opts.Resolver = net.DefaultResolver
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "verifyd-webhooks/1"
	}
	c := &Client{opts: opts}
	dialer := &net.Dialer{Timeout: opts.Timeout, KeepAlive: 30 * time.Second, Control: c.control}
	tr := &http.Transport{
		Proxy: nil, // never through a proxy: the policy checks the real target
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return c.dial(ctx, dialer, network, addr)
		},
		TLSClientConfig:        opts.TLS,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    32,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    opts.Timeout,
		ResponseHeaderTimeout:  opts.Timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	c.http = &http.Client{
		Transport: tr,
		Timeout:   opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a 3xx is an answer, not a hop
		},
	}
	return c
}

// control re-checks the address actually being connected to (defence in
// depth: dial only ever gets checked addresses), then runs the test hook.
func (c *Client) control(network, address string, rc syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrRefused, address)
	}
	if err := c.opts.Policy.Check(ap.Addr()); err != nil {
		return err
	}
	if c.opts.Control != nil {
		return c.opts.Control(network, address, rc)
	}
	return nil
}

// dial resolves host, refuses the connection unless every address the
// name resolves to is allowed (a name that mixes public and internal
// addresses is refused: it is how rebinding attacks look), and dials the
// allowed addresses in order.
func (c *Client) dial(ctx context.Context, d *net.Dialer, network, hostport string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	addrs, err := c.Resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var last error
	for _, a := range addrs {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return conn, nil
		}
		last = err
	}
	return nil, last
}

// Resolve returns the addresses of host, or an error wrapping ErrRefused
// if any of them is refused by the policy. No packet is sent to host.
func (c *Client) Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		addrs, err = c.opts.Resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("resolve %s: no addresses", host)
		}
	}
	for i, a := range addrs {
		if err := c.opts.Policy.Check(a); err != nil {
			return nil, err
		}
		addrs[i] = a.Unmap()
	}
	return addrs, nil
}

// Result is the outcome of one POST.
type Result struct {
	StatusCode int
	Head       string
	Latency    time.Duration
	Err        error
}

// OK reports a 2xx answer.
func (r Result) OK() bool { return r.Err == nil && r.StatusCode >= 200 && r.StatusCode < 300 }

// ErrorText describes a failed result for the delivery log.
func (r Result) ErrorText() string {
	switch {
	case r.Err != nil:
		return r.Err.Error()
	case !r.OK():
		return "HTTP " + strconv.Itoa(r.StatusCode)
	}
	return ""
}

// Post sends body to target with headers; it never follows a redirect and
// reads at most 64 KiB of the answer.
func (c *Client) Post(ctx context.Context, target string, header http.Header, body []byte) Result {
	start := time.Now()
	res := Result{}
	if err := ValidURL(target); err != nil {
		res.Err = err
		return res
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		res.Err = err
		return res
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.opts.UserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		res.Latency, res.Err = time.Since(start), err
		return res
	}
	head := make([]byte, c.opts.MaxHead)
	n, _ := io.ReadFull(resp.Body, head)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	resp.Body.Close()
	res.StatusCode, res.Head, res.Latency = resp.StatusCode, string(bytes.ToValidUTF8(head[:n], nil)), time.Since(start)
	return res
}

// ValidURL checks a webhook URL (D36): absolute http or https with a host,
// at most 2000 characters, no user information.
func ValidURL(s string) error {
	if len(s) > 2000 {
		return errors.New("webhook URL longer than 2000 characters")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return errors.New("webhook URL is not an absolute http(s) URL")
	}
	if u.User != nil {
		return errors.New("webhook URL carries user information")
	}
	return nil
}
