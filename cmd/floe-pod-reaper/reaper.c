/*
 * floe-pod-reaper is the long-lived part of the init of pods that share one
 * PID namespace (see internal/podinit, which implements the same init in Go
 * and launches this program in its place when it is installed).
 *
 * The Go launcher clones it as PID 1 of a new PID and mount namespace (and,
 * for pods with a user namespace, of the pod's user, network, IPC and UTS
 * namespaces) and executes it as
 *
 *     floe-pod-init __floe-pod-init [--pod=ID]
 *
 * with /dev/null on fds 0-2 and the write end of the ready pipe on fd 3. It
 * confines itself, reports ready, then reaps every orphan of the pod until
 * SIGINT or SIGTERM ends it (which ends the namespace and every process
 * left in it).
 *
 * Why C: the init stays alive as long as the pod, one per pod, and a Go
 * program costs about 2.6 MB resident (0.7 MB of it private) just for its
 * runtime, where this one costs what a static pause does.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

/* Must match internal/podinit: HelperArg, podFlag, readyByte, nobody. */
#define HELPER_ARG "__floe-pod-init"
#define POD_FLAG "--pod="
#define READY_FD 3
#define READY_BYTE 1
#define NOBODY 65534

/* fail reports what went wrong on the ready pipe (the launcher prints it
 * and kills this process) and exits. stdio and strerror are left out on
 * purpose: with their locale machinery they add a third to the pages this
 * process keeps resident for the life of the pod. */
static void fail(const char *what)
{
	char msg[128];
	size_t n = 0;
	int e = errno;
	for (const char *p = what; *p && n < 100; p++)
		msg[n++] = *p;
	const char *sep = ": errno ";
	for (const char *p = sep; *p; p++)
		msg[n++] = *p;
	char digits[12];
	int d = 0;
	do {
		digits[d++] = (char)('0' + e % 10);
		e /= 10;
	} while (e > 0 && d < (int)sizeof digits);
	while (d > 0)
		msg[n++] = digits[--d];
	/* Never a lone readyByte (that would read as success): at least
	 * ": errno 0" follows. */
	(void)!write(READY_FD, msg, n); /* if it fails, the launcher sees EOF */
	_exit(1);
}

/* in_user_namespace reports whether this process runs in a user namespace
 * other than the host's, whose uid_map is exactly one line mapping the
 * whole id range onto itself: "0 0 4294967295" (columns padded). */
static int in_user_namespace(void)
{
	char buf[128];
	int fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	const char *want[] = {"0", "0", "4294967295"};
	char *p = buf;
	for (int i = 0; i < 3; i++) {
		while (*p == ' ')
			p++;
		size_t l = strlen(want[i]);
		if (strncmp(p, want[i], l) != 0 || (p[l] != ' ' && p[l] != '\n'))
			return 1;
		p += l;
	}
	while (*p == ' ')
		p++;
	return !(*p == '\n' && p[1] == 0);
}

/* confine takes from the init everything a container of the pod could
 * reach through it. Containers that join the PID namespace see it as PID 1,
 * and /proc/1/root and /proc/1/cwd lead to its root: that must not be the
 * host's. So, in its own mount namespace, it moves onto an empty read-only
 * tmpfs, then becomes nobody, which drops every capability. */
static void confine(void)
{
	/* Read now: /proc is out of reach once the root is the empty tmpfs. */
	int userns = in_user_namespace();
	if (mount("", "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail("make mounts private");
	/* /tmp exists on every host; the tmpfs hides it only in this namespace. */
	if (mount("tmpfs", "/tmp", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555") < 0)
		fail("mount empty root");
	if (chdir("/tmp") < 0)
		fail("chdir to empty root");
	/* pivot_root(".", ".") stacks the old root on the new one; detaching
	 * it leaves only the empty tmpfs. */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail("pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		fail("detach old root");
	if (chdir("/") < 0)
		fail("chdir /");
	if (setgroups(0, NULL) < 0)
		fail("setgroups");
	/* In a pod user namespace whose mapping leaves nobody out, the init
	 * stays the namespace's root: an unprivileged host uid already. */
	if (setgid(NOBODY) < 0 && !(errno == EINVAL && userns))
		fail("setgid");
	if (setuid(NOBODY) < 0 && !(errno == EINVAL && userns))
		fail("setuid");
}

/* reap collects every exited child; one SIGCHLD may stand for several. */
static void reap(void)
{
	for (;;) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
	}
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], HELPER_ARG) != 0 ||
	    (argc == 3 && strncmp(argv[2], POD_FLAG, strlen(POD_FLAG)) != 0) || argc > 3) {
		static const char usage[] = "floe-pod-reaper is started by floe; it is not meant to be run by hand\n";
		(void)!write(2, usage, sizeof usage - 1);
		return 2;
	}
	/* What ps shows, whatever name the binary was executed by (a
	 * descriptor's number, for pods with a user namespace). */
	prctl(PR_SET_NAME, "floe-pod-init", 0, 0, 0);
	/* Descriptors past the ready pipe (the binary itself, opened by the
	 * launcher for pods with a user namespace) lead to the host. */
	syscall(SYS_close_range, READY_FD + 1, ~0U, 0);

	/* PID 1 of a namespace gets only the signals it handles or blocks
	 * (and SIGKILL from outside); blocked ones wait for sigwaitinfo
	 * below. They must be blocked before ready is reported, or a stop
	 * sent right after the launch would be lost. The others are ignored
	 * explicitly, as the Go init does. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		fail("block signals");
	int ignored[] = {SIGHUP, SIGPIPE, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
		signal(ignored[i], SIG_IGN);

	confine();
	char ready = READY_BYTE;
	if (write(READY_FD, &ready, 1) != 1)
		_exit(1);
	close(READY_FD);

	reap();
	for (;;) {
		int sig = sigwaitinfo(&set, NULL);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (sig == SIGCHLD)
			reap();
		else
			_exit(0);
	}
}
