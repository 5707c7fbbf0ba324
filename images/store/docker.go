package store

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// MinAPIVersion is the oldest Docker Engine API the store works with (Docker 20.10).
const MinAPIVersion = "1.41"

// dockerAPI is the subset of *client.Client the adapter calls.
type dockerAPI interface {
	Ping(ctx context.Context, options client.PingOptions) (client.PingResult, error)
	ClientVersion() string
	ImageImport(ctx context.Context, source client.ImageImportSource, ref string, options client.ImageImportOptions) (client.ImageImportResult, error)
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
	ImageRemove(ctx context.Context, imageID string, options client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
}

var _ dockerAPI = (*client.Client)(nil)

// Docker is the Engine backed by the Docker Engine API.
type Docker struct {
	c dockerAPI
}

var _ Engine = (*Docker)(nil)

// NewDocker wraps a moby client. Create the client with
// client.WithAPIVersionNegotiation() (or call Ping, which negotiates).
func NewDocker(c *client.Client) *Docker { return &Docker{c: c} }

// Ping negotiates the API version and fails when the daemon is older than
// MinAPIVersion, so a mismatch shows at start-up instead of as odd errors later.
func (d *Docker) Ping(ctx context.Context) error {
	p, err := d.c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		return fmt.Errorf("ping docker: %w: %w", ErrEngine, err)
	}
	if p.APIVersion != "" && versionLess(p.APIVersion, MinAPIVersion) {
		return fmt.Errorf("docker API %s is older than %s: %w", p.APIVersion, MinAPIVersion, ErrEngine)
	}
	if v := d.c.ClientVersion(); versionLess(v, MinAPIVersion) {
		return fmt.Errorf("negotiated docker API %s is older than %s: %w", v, MinAPIVersion, ErrEngine)
	}
	return nil
}

// versionLess compares dotted API versions numerically ("1.9" < "1.41").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// ImportImage streams tar into POST /images/create?fromSrc=- with CMD, ENV and
// LABEL changes. Docker 20.10 rejects STOPSIGNAL as an import change ("stopsignal
// is not a valid change command"), so the stop signal is added by a config-only
// build (FROM <imported id> / STOPSIGNAL …, no new layer, ~0.5 s), which also
// applies the tag: ref appears only once both steps succeeded.
func (d *Docker) ImportImage(ctx context.Context, tarStream io.Reader, ref string, cfg ImageConfig) (string, error) {
	var changes []string
	if len(cfg.Cmd) > 0 {
		b, err := json.Marshal(cfg.Cmd)
		if err != nil {
			return "", fmt.Errorf("encode CMD: %w", err)
		}
		changes = append(changes, "CMD "+string(b))
	}
	for _, e := range cfg.Env {
		changes = append(changes, "ENV "+e)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Labels)) {
		changes = append(changes, "LABEL "+strconv.Quote(k)+"="+strconv.Quote(cfg.Labels[k]))
	}
	importRef := ref
	if cfg.StopSignal != "" {
		importRef = "" // untagged until the build step finished
	}
	res, err := d.c.ImageImport(ctx, client.ImageImportSource{Source: tarStream, SourceName: "-"}, importRef,
		client.ImageImportOptions{Changes: changes, Message: "nova-container-agent import"})
	if err != nil {
		return "", fmt.Errorf("docker import %s: %w: %w", ref, ErrEngine, err)
	}
	id, err := readImportID(res)
	res.Close()
	if err != nil {
		return "", fmt.Errorf("docker import %s: %w: %w", ref, ErrEngine, err)
	}
	if cfg.StopSignal == "" {
		return id, nil
	}
	finalID, err := d.setStopSignal(ctx, id, ref, cfg.StopSignal)
	if err != nil {
		// The untagged import would otherwise linger as a dangling image.
		_, _ = d.c.ImageRemove(context.WithoutCancel(ctx), id, client.ImageRemoveOptions{PruneChildren: true})
		return "", err
	}
	return finalID, nil
}

// jsonMessage is one line of Docker's progress stream.
type jsonMessage struct {
	Status      string `json:"status"`
	Stream      string `json:"stream"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux *struct {
		ID string `json:"ID"`
	} `json:"aux"`
}

func (m jsonMessage) err() error {
	if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
		return errors.New(m.ErrorDetail.Message)
	}
	if m.Error != "" {
		return errors.New(m.Error)
	}
	return nil
}

// readImportID reads the import response stream: {"status":"sha256:…"} or an error.
func readImportID(r io.Reader) (string, error) {
	dec := json.NewDecoder(r)
	var id string
	for {
		var m jsonMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("decode import response: %w", err)
		}
		if err := m.err(); err != nil {
			return "", err
		}
		if strings.HasPrefix(m.Status, "sha256:") {
			id = strings.TrimSpace(m.Status)
		}
	}
	if id == "" {
		return "", errors.New("import response carried no image id")
	}
	return id, nil
}

func (d *Docker) setStopSignal(ctx context.Context, id, ref, sig string) (string, error) {
	var ctxTar bytes.Buffer
	df := fmt.Sprintf("FROM %s\nSTOPSIGNAL %s\n", id, sig)
	tw := tar.NewWriter(&ctxTar)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df)), ModTime: time.Unix(0, 0)}); err != nil {
		return "", fmt.Errorf("build context: %w", err)
	}
	if _, err := io.WriteString(tw, df); err != nil {
		return "", fmt.Errorf("build context: %w", err)
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("build context: %w", err)
	}
	var tags []string
	if ref != "" {
		tags = []string{ref}
	}
	res, err := d.c.ImageBuild(ctx, &ctxTar, client.ImageBuildOptions{
		Tags: tags, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
		Version: build.BuilderV1, SuppressOutput: true,
	})
	if err != nil {
		return "", fmt.Errorf("docker build (STOPSIGNAL) for %s: %w: %w", ref, ErrEngine, err)
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	var out string
	for {
		var m jsonMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("docker build (STOPSIGNAL) for %s: %w: decode: %w", ref, ErrEngine, err)
		}
		if err := m.err(); err != nil {
			return "", fmt.Errorf("docker build (STOPSIGNAL) for %s: %w: %w", ref, ErrEngine, err)
		}
		if m.Aux != nil && m.Aux.ID != "" {
			out = m.Aux.ID
		} else if s := strings.TrimSpace(m.Stream); strings.HasPrefix(s, "sha256:") {
			out = s
		}
	}
	if out == "" {
		// Older daemons print only the id in quiet mode; fall back to the tag.
		info, err := d.InspectImage(ctx, ref)
		if err != nil {
			return "", err
		}
		out = info.ID
	}
	return out, nil
}

// InspectImage implements Engine.
func (d *Docker) InspectImage(ctx context.Context, ref string) (ImageInfo, error) {
	res, err := d.c.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return ImageInfo{}, fmt.Errorf("image %s: %w", ref, ErrNotFound)
	}
	if err != nil {
		return ImageInfo{}, fmt.Errorf("inspect image %s: %w: %w", ref, ErrEngine, err)
	}
	info := ImageInfo{ID: res.ID, Tags: res.RepoTags, Size: res.Size}
	if t, err := time.Parse(time.RFC3339Nano, res.Created); err == nil {
		info.Created = t
	}
	if res.Config != nil {
		info.Labels, info.Cmd, info.Env, info.StopSignal = res.Config.Labels, res.Config.Cmd, res.Config.Env, res.Config.StopSignal
	}
	return info, nil
}

// ListImages implements Engine.
func (d *Docker) ListImages(ctx context.Context, key, val string) ([]ImageInfo, error) {
	res, err := d.c.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", key+"="+val)})
	if err != nil {
		return nil, fmt.Errorf("list images labelled %s=%s: %w: %w", key, val, ErrEngine, err)
	}
	out := make([]ImageInfo, 0, len(res.Items))
	for _, s := range res.Items {
		out = append(out, ImageInfo{ID: s.ID, Tags: s.RepoTags, Labels: s.Labels, Size: s.Size, Created: time.Unix(s.Created, 0)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// ImagesInUse implements Engine. A stopped container still pins its image:
// removing the image would make the instance impossible to start again.
func (d *Docker) ImagesInUse(ctx context.Context) (map[string]bool, error) {
	res, err := d.c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w: %w", ErrEngine, err)
	}
	used := make(map[string]bool, len(res.Items))
	for _, c := range res.Items {
		used[c.ImageID] = true
	}
	return used, nil
}

// RemoveImage implements Engine. It never forces: Docker's own refusal to delete
// an image a container uses is a second line of defence behind ImagesInUse.
func (d *Docker) RemoveImage(ctx context.Context, id string) error {
	_, err := d.c.ImageRemove(ctx, id, client.ImageRemoveOptions{PruneChildren: true})
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("remove image %s: %w", id, ErrNotFound)
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("remove image %s: %w: %w", id, ErrInUse, err)
	default:
		return fmt.Errorf("remove image %s: %w: %w", id, ErrEngine, err)
	}
}
