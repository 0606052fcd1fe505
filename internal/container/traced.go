package container

import (
	"context"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/floe-cri/floe/internal/monitor"
	"github.com/floe-cri/floe/internal/tracing"
)

// traced makes a child span of the calling RPC's span for each runtime
// step that changes a container (conmon + runc create, start, stop/kill,
// delete); the other methods pass through the embedded Runtime.
type traced struct {
	Runtime
	handler string
}

// Traced wraps a runtime handler's driver with spans; floe uses it only
// while tracing is on, so the driver is called directly otherwise.
func Traced(r Runtime, handler string) Runtime { return &traced{Runtime: r, handler: handler} }

func (t *traced) start(ctx context.Context, step, id string) (context.Context, func(error)) {
	ctx, span := tracing.Start(ctx, "runtime."+step,
		tracing.AttrContainerID.String(id), attribute.String("runtime.handler", t.handler))
	return ctx, func(err error) { tracing.End(span, err) }
}

func (t *traced) Create(ctx context.Context, opts monitor.CreateOptions) (*monitor.Container, error) {
	ctx, end := t.start(ctx, "create", opts.ID)
	c, err := t.Runtime.Create(ctx, opts)
	end(err)
	return c, err
}

func (t *traced) Start(ctx context.Context, c *monitor.Container) error {
	ctx, end := t.start(ctx, "start", c.ID)
	err := t.Runtime.Start(ctx, c)
	end(err)
	return err
}

func (t *traced) Stop(ctx context.Context, c *monitor.Container, sig syscall.Signal, timeout time.Duration) (*monitor.Exit, error) {
	ctx, end := t.start(ctx, "stop", c.ID)
	exit, err := t.Runtime.Stop(ctx, c, sig, timeout)
	end(err)
	return exit, err
}

func (t *traced) Delete(ctx context.Context, c *monitor.Container) error {
	ctx, end := t.start(ctx, "delete", c.ID)
	err := t.Runtime.Delete(ctx, c)
	end(err)
	return err
}
