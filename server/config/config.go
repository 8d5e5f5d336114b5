// Package config is the configuration of `jsp server`: one struct whose
// fields carry their file key, command-line flag, environment variable and
// documentation in struct tags, a strict parser for the configuration file,
// and the merge of the four sources.
//
// Precedence, highest first (docs/decisions.md D16):
//
//	flags  >  environment (JSP_<SECTION>_<KEY>)  >  file (--config)  >  defaults
//
// The file is a strict subset of TOML: "[section]" headers, "key = value"
// lines, "#" comments; values are "basic strings", 'literal strings',
// integers, floats, true/false, and arrays of strings that may span lines.
// Durations are strings in Go syntax ("10s", "1h30m"). A key name may
// hold a dot, "sqlite.checkpoint_bytes" in section "storage": it is written
// under the table header "[storage.sqlite]", or as a dotted key under
// "[storage]". Every error names
// the file, the line and the key; unknown sections and keys are errors, so
// a typo never silently falls back to a default.
//
// The reference table in docs/operations.md is generated from the struct
// tags by [Reference]; a test fails when the document is stale.
package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EnvPrefix starts every environment variable of the configuration.
const EnvPrefix = "JSP_"

// EnvFile names the environment variable that may name the configuration
// file when --config is not given.
const EnvFile = "JSP_CONFIG"

// Config is the whole configuration of `jsp server`. Each leaf field has a
// `key` (its name in the file's section), a `flag` (the `jsp server` flag
// that sets it, "" when there is none) and a `doc` tag. Its default is
// in [Default].
type Config struct {
	Server  Server  `section:"server"`
	Listen  Listen  `section:"listen"`
	TLS     TLS     `section:"tls"`
	Bus     Bus     `section:"bus"`
	Storage Storage `section:"storage"`
	Gateway Gateway `section:"gateway"`
	Auth    Auth    `section:"auth"`
	Limits  Limits  `section:"limits"`
	Log     Log     `section:"log"`
	Events  Events  `section:"events"`
	Voice   Voice   `section:"voice"`
}

// Voice configures the voice and video rooms service of the core role
// (docs/media.md).
type Voice struct {
	MaxRooms        int `key:"max_rooms" flag:"voice-max-rooms" doc:"rooms one core holds"`
	MaxParticipants int `key:"max_participants" flag:"voice-max-participants" doc:"participants of one room"`
	MaxTracks       int `key:"max_tracks" flag:"voice-max-tracks" doc:"tracks one participant publishes"`
}

// Events configures the event consumers of the core role: outgoing
// webhooks and Web Push notifications (docs/events.md).
type Events struct {
	// VAPIDKey is the PEM file of the Web Push VAPID key.
	VAPIDKey string `key:"vapid_key" flag:"vapid-key" doc:"PEM file of the Web Push VAPID key (empty: a key kept in the database, created on first start and shared by every core)"`
	// VAPIDSubject is the operator contact in VAPID tokens.
	VAPIDSubject string `key:"vapid_subject" flag:"vapid-subject" doc:"operator contact in VAPID tokens: a mailto: or https: URL"`
}

// Server is what the process is.
type Server struct {
	// DataDir holds the development certificate, the SQLite database and
	// the embedded NATS server's files.
	DataDir string `key:"data_dir" flag:"data-dir" doc:"directory for the development certificate, SQLite and embedded NATS files"`
	// Role is all, gateway or core.
	Role string `key:"role" flag:"role" enum:"all,gateway,core" doc:"what this process runs: all, gateway or core"`
	// Cluster is the cluster name on the bus.
	Cluster string `key:"cluster" flag:"cluster" doc:"cluster name on the bus; the same on every process of a cluster"`
	// NodeID names this process in session records, the registry and logs.
	NodeID string `key:"node_id" flag:"node-id" doc:"name of this process in session records and the gateway registry (empty: the host name)"`
}

// Listen are the addresses served.
type Listen struct {
	QUIC   string `key:"quic" flag:"quic" doc:"UDP address for QUIC, or off"`
	TCP    string `key:"tcp" flag:"tcp" doc:"TCP address for TLS over TCP, or off"`
	WS     string `key:"ws" flag:"ws" doc:"TCP address for WebSocket over HTTPS, /healthz, /readyz, /metrics and /status, or off"`
	WSPath string `key:"ws_path" flag:"ws-path" doc:"path of the WebSocket endpoint"`
	// WSBehindTLSProxy serves ws over plain HTTP for a TLS-terminating
	// proxy in front (docs/decisions.md D32).
	WSBehindTLSProxy bool `key:"ws_behind_tls_proxy" flag:"ws-behind-tls-proxy" doc:"serve ws over plain HTTP for a reverse proxy that terminates TLS 1.3 in front of it; refused unless ws binds a loopback address or ws_trusted_proxies is set"`
	// WSTrustedProxies are the proxies whose X-Forwarded-For is believed.
	WSTrustedProxies []string `key:"ws_trusted_proxies" flag:"ws-trusted-proxy" doc:"CIDR prefixes of the TLS-terminating proxies allowed to connect to ws when ws_behind_tls_proxy is set; only their X-Forwarded-For names the client (empty: loopback peers, and only when ws binds loopback)"`
	// Ops is the plain-HTTP operations listener of any role.
	Ops string `key:"ops" flag:"ops-addr" doc:"plain-HTTP address for /healthz, /readyz, /metrics and /status of any role (jsp status reads it), or off"`
	// Public are the client URLs of this gateway as others reach it.
	Public []string `key:"public" flag:"public-url" doc:"client URLs of this gateway that other gateways announce in WELCOME and GOAWAY (empty: the bound addresses that name a host)"`
}

// TLS is the gateway's certificate.
type TLS struct {
	Cert  string   `key:"cert" flag:"cert" doc:"PEM certificate chain (empty: a development certificate in data_dir)"`
	Key   string   `key:"key" flag:"key" doc:"PEM private key for cert"`
	Hosts []string `key:"hosts" flag:"host" doc:"extra host names or IPs for the development certificate"`
}

// Bus is the NATS bus.
type Bus struct {
	NATS   []string `key:"nats" flag:"nats" doc:"NATS server URLs of an external bus (empty: an embedded server)"`
	Listen string   `key:"nats_listen" flag:"nats-listen" doc:"host:port where the embedded NATS server accepts other processes (empty: in-process only)"`
	// KVReplicas, EventLogReplicas and WorkQueueReplicas are the JetStream
	// replica counts of what the bus creates (docs/bus.md).
	KVReplicas        int `key:"kv_replicas" flag:"kv-replicas" doc:"JetStream replicas of the NATS KV buckets (session registry, presence, gateway registry); at most the cluster size, 1 with the embedded server"`
	EventLogReplicas  int `key:"event_log_replicas" flag:"event-log-replicas" doc:"JetStream replicas of the event log stream; at most the cluster size, 1 with the embedded server"`
	WorkQueueReplicas int `key:"work_queue_replicas" flag:"work-queue-replicas" doc:"JetStream replicas of the work queue streams (webhook and push delivery); at most the cluster size, 1 with the embedded server"`
	// OpenWait bounds the start-up retries of opening the JetStream
	// resources while a (re)started cluster elects its leaders
	// (docs/decisions.md D35).
	OpenWait time.Duration `key:"open_wait" flag:"bus-open-wait" doc:"how long opening a KV bucket, the event log or a work queue retries while JetStream is not ready (leaders being elected, peers down) before the process fails naming the resource; /readyz reports not ready meanwhile"`
	// Codec is how this process encodes core requests and events on the
	// bus (docs/decisions.md D42); it reads both.
	Codec string `key:"codec" flag:"bus-codec" enum:"binary,json" doc:"encoding of the core requests and channel events this process sends on the bus: binary, or json while nodes of a release before the binary codec remain (a rolling upgrade, see §7 Rolling upgrades); both are read either way"`
}

// Storage is the database.
type Storage struct {
	DB string `key:"db" flag:"db" doc:"database DSN: sqlite:PATH or postgres://... (empty: sqlite:<data_dir>/jsp.db)"`
	// SessionRetention is how long closed session records are kept.
	SessionRetention time.Duration `key:"session_retention" flag:"session-retention" doc:"how long closed session records are kept before the janitor deletes them"`
	// DedupWindow and MaxConns are storage.Config's, for either backend.
	DedupWindow time.Duration `key:"dedup_window" flag:"dedup-window" doc:"how long a message's (sender, client id) is remembered so that a resent PUBLISH is not stored twice; the de-duplication table holds about one row per message of this window"`
	MaxConns    int           `key:"max_conns" flag:"db-max-conns" doc:"SQLite: connections of the read pool (writes always use one); PostgreSQL: size of the connection pool, unless the DSN sets pool_max_conns; at most 4096"`
	// The keys of the [storage.sqlite] table apply to a sqlite: database
	// only (storage.Config.BusyTimeout and storage.Config.SQLite,
	// docs/decisions.md D41); setting one with another database is an
	// error. They stay last: the file writes them under their own table
	// header after the [storage] keys.
	SQLiteBusyTimeout     time.Duration `key:"sqlite.busy_timeout" flag:"sqlite-busy-timeout" doc:"how long SQLite waits for a lock another process holds before the write or read fails"`
	SQLiteCheckpointBytes int           `key:"sqlite.checkpoint_bytes" flag:"sqlite-checkpoint-bytes" doc:"WAL growth in bytes after which a background PASSIVE checkpoint copies the WAL into the database file, off the commit path"`
	SQLiteWALLimitBytes   int           `key:"sqlite.wal_limit_bytes" flag:"sqlite-wal-limit-bytes" doc:"bound of the WAL file in bytes, at least sqlite.checkpoint_bytes: reaching it makes the next commit wait for a checkpoint (readers holding old snapshots included, up to sqlite.busy_timeout), and the file is cut back to it"`
	SQLiteCheckpointIdle  time.Duration `key:"sqlite.checkpoint_idle" flag:"sqlite-checkpoint-idle" doc:"how long without a commit makes the checkpointer empty the WAL file (TRUNCATE)"`
	SQLiteClaimMergeRows  int           `key:"sqlite.claim_merge_rows" flag:"sqlite-claim-merge-rows" doc:"rows of the idempotency claim log merged into the de-duplication table at once; more rows write each of its pages less often and take longer to read back at start-up"`
}

// Gateway is the edge's behaviour.
type Gateway struct {
	Alternatives       []string      `key:"alternatives" flag:"alternative" doc:"addresses of other gateways, announced in WELCOME and GOAWAY besides the live registry"`
	DrainGrace         time.Duration `key:"drain_grace" flag:"drain-grace" doc:"how long clients get to leave on shutdown"`
	MaxSessions        int           `key:"max_sessions" flag:"max-sessions" doc:"maximum concurrent connections"`
	MaxConnsPerIP      int           `key:"max_conns_per_ip" flag:"max-conns-per-ip" doc:"maximum concurrent connections from one IP address"`
	MaxHandshakesPerIP int           `key:"max_handshakes_per_ip" flag:"max-handshakes-per-ip" doc:"maximum handshakes in flight from one IP address"`
	// Heartbeat is the registry and presence refresh interval.
	Heartbeat time.Duration `key:"registry_heartbeat" flag:"registry-heartbeat" doc:"how often a gateway refreshes its own entry in NATS KV (sessions' entries are written on change only, D39); the entry, and with it the gateway's sessions, expires after 3 heartbeats"`
	// CoreTimeout bounds one request to a core.
	CoreTimeout time.Duration `key:"core_timeout" flag:"core-timeout" doc:"how long a gateway waits for a core to commit a PUBLISH before it answers TIMEOUT (the client resends)"`
	// AwayAfter marks a user away when none of their sessions was active
	// for this long.
	AwayAfter time.Duration `key:"away_after" flag:"away-after" doc:"a user whose sessions all sent nothing for this long is away"`
	// LiveChannels are fanned out without a commit (decision D43).
	LiveChannels []string `key:"live_channels" flag:"live-channel" doc:"live channels: names, or prefixes ending in *, whose PUBLISHes are fanned out at once without a commit, sequence number or history (at most once; every gateway needs the same list)"`
}

// Auth is client authentication.
type Auth struct {
	Mode      string   `key:"mode" flag:"auth" enum:"anonymous,token,device,any,both" doc:"credentials clients must present: anonymous, token, device, any or both"`
	TokenKeys []string `key:"token_keys" flag:"token-keys" doc:"PEM files of token verification (public) keys"`
	Audience  string   `key:"audience" flag:"audience" doc:"audience tokens must name: this cluster"`
	Devices   string   `key:"devices" flag:"devices" doc:"file listing registered device keys"`
}

// Limits are filters and rate limits.
type Limits struct {
	Block           []string      `key:"block" flag:"block" doc:"CIDR prefixes to refuse connections from"`
	Allow           []string      `key:"allow" flag:"allow" doc:"CIDR prefixes exempt from per-address caps and rate limits"`
	BlockFile       string        `key:"block_file" flag:"block-file" doc:"file of CIDR prefixes to refuse (one a line, # comments), added to block; reloaded on SIGHUP and when it changes"`
	AllowFile       string        `key:"allow_file" flag:"allow-file" doc:"file of CIDR prefixes exempt from per-address caps and rate limits, added to allow; reloaded like block_file"`
	ListPoll        time.Duration `key:"list_poll" flag:"list-poll" doc:"how often block_file and allow_file are checked for changes"`
	RateConnAttempt float64       `key:"rate_conn_attempts" flag:"rate-conn-attempts" doc:"new connections per second from one IP address (negative: unlimited)"`
	RateConn        float64       `key:"rate_conn" flag:"rate-conn" doc:"messages per second on one connection (negative: unlimited)"`
	RateUser        float64       `key:"rate_user" flag:"rate-user" doc:"messages per second of one user across sessions (negative: unlimited)"`
	RateChannel     float64       `key:"rate_channel" flag:"rate-channel" doc:"publishes per second to one channel (negative: unlimited)"`
	RateCommand     float64       `key:"rate_command" flag:"rate-command" doc:"commands per second to one service from one user (negative: unlimited)"`
}

// Log is logging.
type Log struct {
	Level  string `key:"level" flag:"log-level" enum:"debug,info,warn,error" doc:"log level: debug, info, warn or error"`
	Format string `key:"format" flag:"log-format" enum:"text,json" doc:"log format: text or json"`
}

// Key describes one configuration key.
type Key struct {
	// Name is "section.key".
	Name string
	// Flag is the `jsp server` flag, "" when there is none.
	Flag string
	// Env is the environment variable, JSP_SECTION_KEY.
	Env string
	// Type is "string", "list", "int", "float", "duration" or "bool".
	Type string
	// Default is the default value as the file would write it.
	Default string
	// Doc says what the key does.
	Doc string
	// Enum lists the allowed values of a string key; empty: any.
	Enum []string

	path []int // field index path from Config
}

var (
	keysOnce  sync.Once
	keyList   []Key
	keyByName map[string]*Key
)

// Keys lists every key in file order.
func Keys() []Key {
	keysOnce.Do(buildKeys)
	return slices.Clone(keyList)
}

func lookupKey(name string) *Key {
	keysOnce.Do(buildKeys)
	return keyByName[name]
}

var durationType = reflect.TypeFor[time.Duration]()

func buildKeys() {
	def := reflect.ValueOf(Default())
	ct := reflect.TypeFor[Config]()
	keyByName = map[string]*Key{}
	for i := range ct.NumField() {
		sf := ct.Field(i)
		sec := sf.Tag.Get("section")
		for j := range sf.Type.NumField() {
			f := sf.Type.Field(j)
			k := Key{
				Name: sec + "." + f.Tag.Get("key"),
				Flag: f.Tag.Get("flag"),
				Doc:  f.Tag.Get("doc"),
				Enum: splitEnum(f.Tag.Get("enum")),
				Type: typeName(f.Type),
				path: []int{i, j},
			}
			k.Env = EnvPrefix + strings.ToUpper(strings.ReplaceAll(k.Name, ".", "_"))
			k.Default = formatValue(def.FieldByIndex(k.path))
			keyList = append(keyList, k)
		}
	}
	for i := range keyList {
		keyByName[keyList[i].Name] = &keyList[i]
	}
}

func splitEnum(tag string) []string {
	if tag == "" {
		return nil
	}
	return strings.Split(tag, ",")
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t.Kind() == reflect.String:
		return "string"
	case t.Kind() == reflect.Slice:
		return "list"
	case t.Kind() == reflect.Int:
		return "int"
	case t.Kind() == reflect.Float64:
		return "float"
	case t.Kind() == reflect.Bool:
		return "bool"
	}
	panic("config: unsupported field type " + t.String())
}

// Get returns the value of key as the file would write it.
func (c *Config) Get(key string) (string, error) {
	k := lookupKey(key)
	if k == nil {
		return "", fmt.Errorf("config: unknown key %q", key)
	}
	return formatValue(reflect.ValueOf(c).Elem().FieldByIndex(k.path)), nil
}

// Set sets key from its text form: a string as is, a list as
// comma-separated items, a number or a duration ("10s") in Go syntax, a
// boolean as true, false, 1 or 0 (see [ParseBool]). This is the form of
// flags and environment variables.
func (c *Config) Set(key, text string) error {
	k := lookupKey(key)
	if k == nil {
		return fmt.Errorf("config: unknown key %q", key)
	}
	v := reflect.ValueOf(c).Elem().FieldByIndex(k.path)
	if k.Type == "list" {
		var items []string
		for s := range strings.SplitSeq(text, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(items))
		return nil
	}
	return setScalar(v, k, text)
}

// setScalar parses text into a scalar field.
func setScalar(v reflect.Value, k *Key, text string) error {
	switch k.Type {
	case "string":
		if len(k.Enum) > 0 && !slices.Contains(k.Enum, text) {
			return fmt.Errorf("%s: want one of %s, got %q", k.Name, strings.Join(k.Enum, ", "), text)
		}
		v.SetString(text)
	case "duration":
		d, err := time.ParseDuration(text)
		if err != nil {
			return fmt.Errorf("%s: want a duration such as \"10s\", got %q", k.Name, text)
		}
		if d < 0 {
			return fmt.Errorf("%s: negative duration %q", k.Name, text)
		}
		v.SetInt(int64(d))
	case "int":
		n, err := strconv.ParseInt(strings.ReplaceAll(text, "_", ""), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%s: want a non-negative integer, got %q", k.Name, text)
		}
		v.SetInt(n)
	case "float":
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return fmt.Errorf("%s: want a number, got %q", k.Name, text)
		}
		v.SetFloat(f)
	case "bool":
		b, err := ParseBool(text)
		if err != nil {
			return fmt.Errorf("%s: %w", k.Name, err)
		}
		v.SetBool(b)
	}
	return nil
}

// ParseBool parses a boolean in the text form of flags and environment
// variables: exactly true, false, 1 or 0. It is stricter than
// strconv.ParseBool on purpose: "yes", "on", "TRUE" or "t" in a deployment
// manifest are refused with the key named rather than read one way by one
// tool and another way by the next.
func ParseBool(text string) (bool, error) {
	switch text {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("want true, false, 1 or 0, got %q", text)
}

// formatValue writes a field's value in the file's syntax.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return strconv.Quote(time.Duration(v.Int()).String())
	case v.Kind() == reflect.String:
		return strconv.Quote(v.String())
	case v.Kind() == reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = strconv.Quote(v.Index(i).String())
		}
		return "[" + strings.Join(items, ", ") + "]"
	case v.Kind() == reflect.Int:
		return strconv.FormatInt(v.Int(), 10)
	case v.Kind() == reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case v.Kind() == reflect.Bool:
		return strconv.FormatBool(v.Bool())
	}
	return fmt.Sprint(v.Interface())
}

// flagText is a value in the form Set takes: unquoted, lists joined by
// commas.
func flagText(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.String:
		return v.String()
	case v.Kind() == reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = v.Index(i).String()
		}
		return strings.Join(items, ",")
	}
	return formatValue(v)
}

// Text returns the value of key in the form flags take (no quotes, lists
// joined by commas).
func (c *Config) Text(key string) (string, error) {
	k := lookupKey(key)
	if k == nil {
		return "", fmt.Errorf("config: unknown key %q", key)
	}
	return flagText(reflect.ValueOf(c).Elem().FieldByIndex(k.path)), nil
}
