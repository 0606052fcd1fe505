// Package daemon wires floe's services together for `floe serve`: it takes
// the state lock, opens the database, restores state, serves the CRI socket
// and shuts down cleanly on SIGTERM/SIGINT, leaving pods running.
package daemon

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/floe-cri/floe/internal/config"
	"github.com/floe-cri/floe/internal/images"
	"github.com/floe-cri/floe/internal/logging"
	"github.com/floe-cri/floe/internal/network"
	"github.com/floe-cri/floe/internal/sandbox"
	"github.com/floe-cri/floe/internal/server"
	"github.com/floe-cri/floe/internal/statelock"
	"github.com/floe-cri/floe/internal/store"
	"github.com/floe-cri/floe/internal/version"
)

// DropInDir is where drop-ins for a configuration file live: floe.d beside
// it, so /etc/floe/floe.toml reads /etc/floe/floe.d/*.toml.
func DropInDir(configFile string) string {
	return filepath.Join(filepath.Dir(configFile), "floe.d")
}

// shutdownTimeout bounds how long in-flight RPCs may run after SIGTERM.
const shutdownTimeout = 30 * time.Second

// Run serves until SIGTERM or SIGINT.
func Run(cfg *config.Config) error {
	log, _, err := logging.New(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	lock, err := statelock.Acquire(cfg.StateDir)
	if err != nil {
		return err
	}
	defer lock.Release()
	if err := os.MkdirAll(cfg.RunDir, 0o711); err != nil {
		return fmt.Errorf("create run dir %s: %w", cfg.RunDir, err)
	}
	db, err := store.Open(filepath.Join(cfg.StateDir, "floe.db"))
	if err != nil {
		return err
	}
	defer db.Close()

	net := network.New(cfg.Network.CNIConfigDir, cfg.Network.CNIPluginDirs, filepath.Join(cfg.StateDir, "cni-cache"))
	if err := net.Status(); err != nil {
		log.Warn("pod networking is not ready; NetworkReady stays false until it is", "err", err)
	}
	handlers := make([]string, 0, len(cfg.Runtimes))
	for name := range cfg.Runtimes {
		handlers = append(handlers, name)
	}
	sandboxes := sandbox.New(sandbox.Options{
		DB:             db,
		Network:        net,
		NetnsDir:       cfg.Network.NetnsDir,
		RunDir:         cfg.RunDir,
		ShmSize:        int64(cfg.Sandbox.ShmSize),
		AbandonedGrace: cfg.Sandbox.AbandonedGrace.Std(),
		CreateTimeout:  cfg.Sandbox.CreateTimeout.Std(),
		Handlers:       handlers,
		DefaultHandler: cfg.DefaultRuntime,
		HostResolvConf: "/etc/resolv.conf",
		Log:            log,
	})
	defer sandboxes.Close()
	restoreCtx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	err = sandboxes.Restore(restoreCtx)
	cancel()
	if err != nil {
		return err
	}

	imgs, err := images.New(images.Options{
		StorageRoot:             cfg.Storage.Root,
		StorageRunRoot:          cfg.Storage.RunRoot,
		Driver:                  cfg.Storage.Driver,
		MountOptions:            cfg.Storage.MountOptions,
		RegistriesConf:          cfg.Registries.ConfigPath,
		RegistriesConfDir:       cfg.Registries.ConfigDir,
		RegistriesOverride:      cfg.Registries.OverridePath,
		DefaultSearchRegistries: cfg.Registries.DefaultSearchRegistries,
		AuthFile:                cfg.Images.AuthFile,
		SignaturePolicy:         cfg.Images.SignaturePolicy,
		PullProgressTimeout:     cfg.Images.PullProgressTimeout.Std(),
		Pinned:                  cfg.Images.Pinned,
		StateDir:                cfg.StateDir,
		RunDir:                  cfg.RunDir,
		UserAgent:               "floe/" + version.Version,
		Log:                     log,
	})
	if err != nil {
		return err
	}
	// Deferred before the server starts, so it runs after the server has
	// stopped: no RPC uses the store while it shuts down.
	defer func() {
		if err := imgs.Close(); err != nil {
			log.Error("image store shutdown", "err", err)
		}
	}()

	srv := server.New(server.Deps{Config: cfg, Sandboxes: sandboxes, Network: net, Images: imgs, Log: log})
	l, err := server.Listen(cfg.Socket)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	log.Info("floe serving", "version", version.Version, "socket", cfg.Socket, "stateDir", cfg.StateDir, "runDir", cfg.RunDir, "cgroupManager", cfg.CgroupManager)

	select {
	case sig := <-sigs:
		log.Info("shutting down; pods and containers keep running", "signal", sig.String())
		srv.Shutdown(shutdownTimeout)
		<-serveErr
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("serve CRI: %w", err)
		}
	}
	os.Remove(cfg.Socket)
	return nil
}
