package server

import (
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Real-time signal numbers as the C library (and so every container
// image's kill(1)) numbers them: glibc keeps 32 and 33 for itself.
const (
	sigRTMin = 34
	sigRTMax = 64
)

// signalAliases are CRI signal names unix.SignalNum does not know.
var signalAliases = map[string]syscall.Signal{
	"SIGCLD": unix.SIGCHLD, "SIGPOLL": unix.SIGIO, "SIGIOT": unix.SIGABRT,
}

// linuxSignal turns a CRI Signal (ContainerConfig.stop_signal) into the
// Linux signal number; 0 means the runtime default.
func linuxSignal(s runtimeapi.Signal) (syscall.Signal, bool) {
	if s == runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		return 0, true
	}
	name, ok := runtimeapi.Signal_name[int32(s)]
	if !ok {
		return 0, false
	}
	name = strings.TrimPrefix(name, "SIGNAL_")
	if n, ok := strings.CutPrefix(name, "SIGRTMINPLUS"); ok {
		v, err := strconv.Atoi(n)
		return syscall.Signal(sigRTMin + v), err == nil
	}
	if n, ok := strings.CutPrefix(name, "SIGRTMAXMINUS"); ok {
		v, err := strconv.Atoi(n)
		return syscall.Signal(sigRTMax - v), err == nil
	}
	switch name {
	case "SIGRTMIN":
		return sigRTMin, true
	case "SIGRTMAX":
		return sigRTMax, true
	}
	if sig, ok := signalAliases[name]; ok {
		return sig, true
	}
	sig := unix.SignalNum(name)
	return sig, sig != 0
}

// criSignal is the CRI name of a Linux signal number (for
// ContainerStatus.stop_signal); RUNTIME_DEFAULT when CRI has no name for it.
func criSignal(sig syscall.Signal) runtimeapi.Signal {
	var name string
	switch {
	case sig == sigRTMin:
		name = "SIGRTMIN"
	case sig == sigRTMax:
		name = "SIGRTMAX"
	case sig > sigRTMin && sig < sigRTMax && sig-sigRTMin <= sigRTMax-sig:
		name = "SIGRTMINPLUS" + strconv.Itoa(int(sig-sigRTMin))
	case sig > sigRTMin && sig < sigRTMax:
		name = "SIGRTMAXMINUS" + strconv.Itoa(int(sigRTMax-sig))
	default:
		name = unix.SignalName(sig)
	}
	return runtimeapi.Signal(runtimeapi.Signal_value["SIGNAL_"+name])
}
