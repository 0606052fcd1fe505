package inspect

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/container"
	"github.com/floe-cri/floe/internal/network"
	"github.com/floe-cri/floe/internal/objects"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/store"
	"github.com/floe-cri/floe/internal/version"
)

// Pod and container ids of the fixture. Sandboxes: "web" in two
// namespaces (a name that needs its namespace), "db" twice in one
// namespace (two attempts: the newest wins).
const (
	webDefault = "aaaa1111" + "0000000000000000000000000000000000000000000000000000000000"
	webProd    = "aaaa2222" + "0000000000000000000000000000000000000000000000000000000000"
	dbOld      = "bbbb3333" + "0000000000000000000000000000000000000000000000000000000000"
	dbNew      = "bbbb4444" + "0000000000000000000000000000000000000000000000000000000000"
	appWeb     = "cccc1111" + "0000000000000000000000000000000000000000000000000000000000"
	appProd    = "cccc2222" + "0000000000000000000000000000000000000000000000000000000000"
	sidecar    = "dddd1111" + "0000000000000000000000000000000000000000000000000000000000"
)

type fixture struct {
	src Sources
}

// newFixture writes pod and container records to a state database and
// restores managers from it, as a restarted daemon does; nothing in them
// needs root (no pins, no running processes).
func newFixture(t *testing.T, withContainers bool) *fixture {
	t.Helper()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pods := []*sandbox.Sandbox{
		{Meta: objects.Meta{ID: webDefault, CreatedAt: 1}, Spec: sandbox.Spec{Name: "web", Namespace: "default", UID: "u1", Labels: map[string]string{"app": "web"}}, State: sandbox.StateNotReady, RunDir: "/run/floe/pods/" + webDefault},
		{Meta: objects.Meta{ID: webProd, CreatedAt: 2}, Spec: sandbox.Spec{Name: "web", Namespace: "prod", UID: "u2"}, State: sandbox.StateNotReady},
		{Meta: objects.Meta{ID: dbOld, CreatedAt: 3}, Spec: sandbox.Spec{Name: "db", Namespace: "default", UID: "u3"}, State: sandbox.StateNotReady},
		{Meta: objects.Meta{ID: dbNew, CreatedAt: 4}, Spec: sandbox.Spec{Name: "db", Namespace: "default", UID: "u3", Attempt: 1}, State: sandbox.StateNotReady},
	}
	for _, p := range pods {
		if err := db.Put(store.Sandboxes, p.ID, p); err != nil {
			t.Fatal(err)
		}
	}
	user := &specs.User{UID: 0}
	ctrs := []*container.Container{
		{Meta: objects.Meta{ID: appWeb, CreatedAt: 5}, SandboxID: webDefault, Spec: container.Spec{Name: "app"}, State: container.StateExited, ExitCode: 3, Handler: "runc", User: user, LogPath: "/var/log/pods/app.log"},
		{Meta: objects.Meta{ID: appProd, CreatedAt: 6}, SandboxID: webProd, Spec: container.Spec{Name: "app"}, State: container.StateExited, Handler: "runc", User: user},
		{Meta: objects.Meta{ID: sidecar, CreatedAt: 7}, SandboxID: webDefault, Spec: container.Spec{Name: "sidecar"}, State: container.StateExited, Handler: "runc", User: user},
	}
	for _, c := range ctrs {
		if err := db.Put(store.Containers, c.ID, c); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sm := sandbox.New(sandbox.Options{DB: db, Log: log})
	t.Cleanup(sm.Close)
	if err := sm.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.RunDir = dir
	cfg.Runtimes = map[string]config.Runtime{"runc": {RuntimePath: "/nonexistent/runc"}}
	src := Sources{
		Config: cfg, Sandboxes: sm, Log: log,
		Network:        network.New(filepath.Join(dir, "cni"), nil, filepath.Join(dir, "cache")),
		MetricsAddress: func() string { return "127.0.0.1:9099" },
	}
	if withContainers {
		cm := container.New(container.Options{DB: db, Log: log, CgroupDriver: "cgroupfs"})
		t.Cleanup(cm.Close)
		if err := cm.Restore(context.Background()); err != nil {
			t.Fatal(err)
		}
		src.Containers = cm
	}
	return &fixture{src: src}
}

// get serves one request and decodes its JSON body into v.
func (f *fixture) get(t *testing.T, path string, v any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	Handler(f.src).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %v in %q", path, err, rec.Body.String())
	}
	return rec.Code
}

func TestPodLookup(t *testing.T) {
	f := newFixture(t, true)
	for _, tc := range []struct {
		ref    string
		code   int
		id     string // wanted pod, or a piece of the error
		errMsg string
	}{
		{ref: webProd, code: 200, id: webProd},
		{ref: "aaaa2", code: 200, id: webProd},            // unique prefix
		{ref: "prod/web", code: 200, id: webProd},         // namespace/name
		{ref: "default/web", code: 200, id: webDefault},   //
		{ref: "db", code: 200, id: dbNew},                 // attempts of one pod: the newest
		{ref: "aaaa", code: 400, errMsg: "ambiguous"},     // prefix of two ids
		{ref: "web", code: 400, errMsg: "namespace/name"}, // two namespaces
		{ref: "nope", code: 404, errMsg: `"nope"`},
		{ref: "kube-system/web", code: 404, errMsg: "kube-system/web"},
	} {
		var body map[string]any
		code := f.get(t, "/pods/"+tc.ref, &body)
		if code != tc.code {
			t.Errorf("GET /pods/%s: %d %v, want %d", tc.ref, code, body, tc.code)
			continue
		}
		if tc.code == 200 && body["id"] != tc.id {
			t.Errorf("GET /pods/%s: id %v, want %s", tc.ref, body["id"], tc.id)
		}
		if tc.code != 200 && !strings.Contains(body["error"].(string), tc.errMsg) {
			t.Errorf("GET /pods/%s: error %q, want it to mention %q", tc.ref, body["error"], tc.errMsg)
		}
	}
}

func TestPodReportShape(t *testing.T) {
	f := newFixture(t, true)
	var p map[string]any
	if code := f.get(t, "/pods/"+webDefault, &p); code != 200 {
		t.Fatalf("code %d", code)
	}
	for key, want := range map[string]any{
		"name": "web", "namespace": "default", "uid": "u1", "state": "notready",
		"hostNetwork": false, "runDir": "/run/floe/pods/" + webDefault,
	} {
		if p[key] != want {
			t.Errorf("%s = %v, want %v", key, p[key], want)
		}
	}
	if p["labels"].(map[string]any)["app"] != "web" {
		t.Errorf("labels = %v", p["labels"])
	}
	// The pod's containers, oldest first; other pods' are not listed.
	cs, _ := p["containers"].([]any)
	if len(cs) != 2 || cs[0].(map[string]any)["id"] != appWeb || cs[1].(map[string]any)["name"] != "sidecar" ||
		cs[0].(map[string]any)["state"] != "exited" {
		t.Errorf("containers = %v", cs)
	}
	if _, ok := p["hostLink"]; ok {
		t.Error("a pod that is not ready has no host link to report")
	}
}

func TestPodsList(t *testing.T) {
	f := newFixture(t, false)
	var pods []Pod
	if code := f.get(t, "/pods", &pods); code != 200 {
		t.Fatalf("code %d", code)
	}
	var ids []string
	for _, p := range pods {
		ids = append(ids, p.ID)
		if len(p.Containers) != 0 {
			t.Errorf("pod %s lists containers without a container service", p.ID)
		}
	}
	if strings.Join(ids, ",") != strings.Join([]string{webDefault, webProd, dbOld, dbNew}, ",") {
		t.Errorf("pods = %v", ids)
	}
}

func TestContainerLookup(t *testing.T) {
	f := newFixture(t, true)
	for _, tc := range []struct {
		ref    string
		code   int
		want   string
		errMsg string
	}{
		{ref: sidecar, code: 200, want: sidecar},
		{ref: "cccc2", code: 200, want: appProd},
		{ref: "sidecar", code: 200, want: sidecar},
		{ref: "prod/web/app", code: 200, want: appProd},
		{ref: "app", code: 400, errMsg: "names 2 containers"},
		{ref: "cccc", code: 400, errMsg: "ambiguous"},
		{ref: "prod/db/app", code: 404, errMsg: "prod/db/app"},
		{ref: "nope", code: 404, errMsg: "nope"},
	} {
		var body map[string]any
		code := f.get(t, "/containers/"+tc.ref, &body)
		if code != tc.code {
			t.Errorf("GET /containers/%s: %d %v, want %d", tc.ref, code, body, tc.code)
			continue
		}
		if tc.code == 200 && body["id"] != tc.want {
			t.Errorf("GET /containers/%s: id %v, want %s", tc.ref, body["id"], tc.want)
		}
		if tc.code != 200 && !strings.Contains(body["error"].(string), tc.errMsg) {
			t.Errorf("GET /containers/%s: error %q, want it to mention %q", tc.ref, body["error"], tc.errMsg)
		}
	}
}

func TestContainerReportShape(t *testing.T) {
	f := newFixture(t, true)
	var c Container
	if code := f.get(t, "/containers/"+appWeb, &c); code != 200 {
		t.Fatalf("code %d", code)
	}
	if c.PodName != "web" || c.PodNamespace != "default" || c.PodID != webDefault || c.State != "exited" || c.ExitCode != 3 {
		t.Errorf("report = %+v", c)
	}
	if c.RuntimePath != "/nonexistent/runc" || c.RuntimeRoot != "/run/runc" || c.RuntimeState != "/nonexistent/runc state "+appWeb {
		t.Errorf("runtime = %q root %q state %q", c.RuntimePath, c.RuntimeRoot, c.RuntimeState)
	}
	if c.Pid != 0 || c.LogPath != "/var/log/pods/app.log" {
		t.Errorf("exited container: pid %d log %q", c.Pid, c.LogPath)
	}
	if !c.StartedAt.IsZero() {
		t.Errorf("never started, startedAt = %v", c.StartedAt)
	}
}

func TestContainersUnavailable(t *testing.T) {
	f := newFixture(t, false)
	var body map[string]string
	if code := f.get(t, "/containers/"+appWeb, &body); code != http.StatusServiceUnavailable || !strings.Contains(body["error"], "not available") {
		t.Errorf("%d %v", code, body)
	}
}

func TestInfo(t *testing.T) {
	f := newFixture(t, false)
	var in Info
	if code := f.get(t, "/info", &in); code != 200 {
		t.Fatalf("code %d", code)
	}
	cfg := f.src.Config
	if in.Version != version.Version || in.InspectSocket != filepath.Join(cfg.RunDir, "inspect.sock") || in.MetricsAddress != "127.0.0.1:9099" {
		t.Errorf("info = %+v", in)
	}
	if in.CNIError == "" || in.CNINetwork != "" {
		t.Errorf("no CNI config must be reported: %q %q", in.CNIError, in.CNINetwork)
	}
	if r := in.Runtimes["runc"]; r.Path != "/nonexistent/runc" || !strings.Contains(r.Problem, "/nonexistent/runc") {
		t.Errorf("runtime runc = %+v, want a problem naming the missing binary", r)
	}
	if in.DefaultIDMappings == nil {
		t.Error("defaultIdMappings must be [] not null")
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	f := newFixture(t, false)
	h := Handler(f.src)
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/nothing", nil),
		httptest.NewRequest(http.MethodPost, "/pods", nil),
		httptest.NewRequest(http.MethodDelete, "/pods/"+webDefault, nil),
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d", r.Method, r.URL.Path, rec.Code)
		}
	}
}

// The client over the real unix socket: decoded reports and the
// endpoint's error messages.
func TestClientOverSocket(t *testing.T) {
	f := newFixture(t, true)
	sock := filepath.Join(t.TempDir(), "inspect.sock")
	s, err := Serve(sock, Handler(f.src), f.src.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("socket %v %v", fi.Mode(), err)
	}
	ctx := context.Background()
	c := NewClient(sock)
	if in, err := c.Info(ctx); err != nil || in.Version != version.Version {
		t.Errorf("Info: %+v %v", in, err)
	}
	if p, err := c.Pod(ctx, "prod/web"); err != nil || p.ID != webProd {
		t.Errorf("Pod(prod/web): %+v %v", p, err)
	}
	if ps, err := c.Pods(ctx); err != nil || len(ps) != 4 {
		t.Errorf("Pods: %d %v", len(ps), err)
	}
	if ct, err := c.Container(ctx, "prod/web/app"); err != nil || ct.ID != appProd {
		t.Errorf("Container: %+v %v", ct, err)
	}
	if _, err := c.Pod(ctx, "nope"); err == nil || !strings.Contains(err.Error(), `no pod with id, id prefix or name "nope"`) {
		t.Errorf("Pod(nope): %v", err)
	}
	if _, err := c.Pod(ctx, "web"); err == nil || !strings.Contains(err.Error(), "namespace/name") {
		t.Errorf("Pod(web): %v", err)
	}
	s.Close()
	if _, err := NewClient(sock).Info(ctx); err == nil || !strings.Contains(err.Error(), "is the daemon running") {
		t.Errorf("closed endpoint: %v", err)
	}
}
