/* guest-helper.c: static helper for the kernel-client guest (busybox has no xattr,
 * flock, fcntl-lock or errno-precise tools). setup.sh/run.sh build it with `cc -static`
 * (the guest has no libc) and the guest finds it as /bin/p9x. Adapted from
 * scripts/golden-guest-helper.c. Every op prints a one-line result on stdout and exits
 * 0 when the operation behaved as described, 1 otherwise (details on stderr), 2 on
 * bad usage.
 *   p9x errno FILE                 open(FILE, O_RDONLY); prints OK or the errno name
 *   p9x rename OLD NEW             rename(2); prints OK or the errno name (exit 0 either way)
 *   p9x setxattr FILE NAME VALUE   p9x getxattr FILE NAME (prints NAME=VALUE)
 *   p9x listxattr FILE             p9x removexattr FILE NAME
 *   p9x flock FILE                 LOCK_EX held here; another open file description in
 *                                  a child must get EWOULDBLOCK with LOCK_NB, then
 *                                  succeed after LOCK_UN
 *   p9x posixlock FILE             F_SETLK write lock on [0,100) here; a child's F_GETLK
 *                                  must report F_WRLCK and our pid, its F_SETLK must
 *                                  fail EAGAIN/EACCES, and succeed after our F_UNLCK
 *   p9x getlk FILE                 F_GETLK on a file nobody locked: must say F_UNLCK
 *   p9x fsync FILE                 write + fsync + fdatasync
 *   p9x mkfiles DIR N [JOBS]       create DIR/f00001 .. DIR/fN (5 digits), empty, with
 *                                  JOBS processes in parallel (default 1): each 9P
 *                                  request waits a few ms under TCG, so overlap them
 *   p9x rmfiles DIR N [JOBS]       unlink DIR/f00001 .. DIR/fN the same way
 *   p9x countdir DIR               readdir(DIR): prints the number of entries (no . ..)
 *   p9x listdir DIR                readdir(DIR): prints the names (no . ..), unsorted;
 *                                  unlike busybox ls it does not stat every entry
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static const char *ename(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(ENOENT) E(EACCES) E(EPERM) E(EEXIST) E(EXDEV) E(ENOTDIR) E(EISDIR) E(EINVAL)
    E(EIO) E(ENOSYS) E(EOPNOTSUPP) E(ENODATA) E(EAGAIN) E(ENOTEMPTY) E(EBADF) E(ENOLCK)
    E(EFAULT) E(ENOSPC) E(EROFS) E(ESTALE) E(ENAMETOOLONG) E(EMLINK) E(ERANGE)
#undef E
    default: return "E?";
  }
}

static int fail(const char *what, const char *f) {
  int e = errno;
  fprintf(stderr, "p9x: %s %s: %s (%s, errno %d)\n", what, f, strerror(e), ename(e), e);
  printf("FAIL %s: %s\n", what, ename(e));
  return 1;
}

/* wait for a child and return its exit status (or 1 if it died otherwise) */
static int reap(pid_t p) {
  int st;
  if (waitpid(p, &st, 0) != p) return 1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static int op_flock(const char *f) {
  int fd = open(f, O_RDWR);
  if (fd < 0) return fail("open", f);
  if (flock(fd, LOCK_EX)) return fail("flock LOCK_EX", f);
  pid_t p = fork();
  if (p < 0) return fail("fork", f);
  if (p == 0) {
    int fd2 = open(f, O_RDWR);
    if (fd2 < 0) _exit(fail("open (child)", f));
    if (flock(fd2, LOCK_EX | LOCK_NB) == 0) {
      printf("FAIL child got LOCK_EX while the parent holds it\n");
      _exit(1);
    }
    if (errno != EWOULDBLOCK) _exit(fail("flock LOCK_EX|LOCK_NB (child, want EWOULDBLOCK)", f));
    _exit(0);
  }
  if (reap(p)) return 1;
  if (flock(fd, LOCK_UN)) return fail("flock LOCK_UN", f);
  p = fork();
  if (p < 0) return fail("fork", f);
  if (p == 0) {
    int fd2 = open(f, O_RDWR);
    if (fd2 < 0) _exit(fail("open (child)", f));
    if (flock(fd2, LOCK_EX | LOCK_NB)) _exit(fail("flock LOCK_EX|LOCK_NB after unlock (child)", f));
    if (flock(fd2, LOCK_UN)) _exit(fail("flock LOCK_UN (child)", f));
    _exit(0);
  }
  if (reap(p)) return 1;
  close(fd);
  printf("OK\n");
  return 0;
}

static int op_posixlock(const char *f) {
  int fd = open(f, O_RDWR);
  if (fd < 0) return fail("open", f);
  struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100 };
  if (fcntl(fd, F_SETLK, &l)) return fail("F_SETLK F_WRLCK", f);
  pid_t me = getpid();
  pid_t p = fork();
  if (p < 0) return fail("fork", f);
  if (p == 0) {
    int fd2 = open(f, O_RDWR);
    if (fd2 < 0) _exit(fail("open (child)", f));
    struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10 };
    if (fcntl(fd2, F_GETLK, &q)) _exit(fail("F_GETLK (child)", f));
    if (q.l_type != F_WRLCK || q.l_pid != me) {
      printf("FAIL child F_GETLK: type %d pid %d, want F_WRLCK(%d) pid %d\n", q.l_type,
             (int)q.l_pid, F_WRLCK, (int)me);
      _exit(1);
    }
    q = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10 };
    if (fcntl(fd2, F_SETLK, &q) == 0) {
      printf("FAIL child got a conflicting F_SETLK\n");
      _exit(1);
    }
    if (errno != EAGAIN && errno != EACCES) _exit(fail("F_SETLK (child, want EAGAIN)", f));
    _exit(0);
  }
  if (reap(p)) return 1;
  l.l_type = F_UNLCK;
  if (fcntl(fd, F_SETLK, &l)) return fail("F_SETLK F_UNLCK", f);
  p = fork();
  if (p < 0) return fail("fork", f);
  if (p == 0) {
    int fd2 = open(f, O_RDWR);
    if (fd2 < 0) _exit(fail("open (child)", f));
    struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10 };
    if (fcntl(fd2, F_SETLK, &q)) _exit(fail("F_SETLK after unlock (child)", f));
    q.l_type = F_UNLCK;
    if (fcntl(fd2, F_SETLK, &q)) _exit(fail("F_SETLK F_UNLCK (child)", f));
    _exit(0);
  }
  if (reap(p)) return 1;
  close(fd);
  printf("OK\n");
  return 0;
}

/* files_op: create (mk=1) or unlink (mk=0) DIR/f00001..DIR/fN with jobs processes */
static int files_op(const char *dir, int n, int jobs, int mk) {
  char path[4096];
  if (jobs < 1) jobs = 1;
  for (int j = 0; j < jobs; j++) {
    pid_t p = fork();
    if (p < 0) return fail("fork", dir);
    if (p) continue;
    for (int i = j + 1; i <= n; i += jobs) {
      snprintf(path, sizeof path, "%s/f%05d", dir, i);
      if (mk) {
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) _exit(fail("create", path));
        if (close(fd)) _exit(fail("close", path));
      } else if (unlink(path)) {
        _exit(fail("unlink", path));
      }
    }
    _exit(0);
  }
  int bad = 0;
  for (int j = 0; j < jobs; j++) {
    int st;
    if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) bad = 1;
  }
  if (bad) return 1;
  printf("OK %d\n", n);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: p9x OP FILE [ARGS]\n"); return 2; }
  const char *op = argv[1], *f = argv[2];
  char buf[65536];
  setvbuf(stdout, NULL, _IONBF, 0);
  if (!strcmp(op, "errno") && argc == 3) {
    int fd = open(f, O_RDONLY);
    if (fd >= 0) { close(fd); printf("OK\n"); } else printf("%s\n", ename(errno));
  } else if (!strcmp(op, "rename") && argc == 4) {
    if (rename(f, argv[3])) printf("%s\n", ename(errno)); else printf("OK\n");
  } else if (!strcmp(op, "setxattr") && argc == 5) {
    if (setxattr(f, argv[3], argv[4], strlen(argv[4]), 0)) return fail(op, f);
    printf("OK\n");
  } else if (!strcmp(op, "getxattr") && argc == 4) {
    ssize_t n = getxattr(f, argv[3], buf, sizeof buf);
    if (n < 0) return fail(op, f);
    printf("%s=%.*s\n", argv[3], (int)n, buf);
  } else if (!strcmp(op, "listxattr") && argc == 3) {
    ssize_t n = listxattr(f, buf, sizeof buf);
    if (n < 0) return fail(op, f);
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) printf("%s\n", buf + i);
  } else if (!strcmp(op, "removexattr") && argc == 4) {
    if (removexattr(f, argv[3])) return fail(op, f);
    printf("OK\n");
  } else if (!strcmp(op, "flock") && argc == 3) {
    return op_flock(f);
  } else if (!strcmp(op, "posixlock") && argc == 3) {
    return op_posixlock(f);
  } else if (!strcmp(op, "getlk") && argc == 3) {
    int fd = open(f, O_RDWR);
    if (fd < 0) return fail("open", f);
    struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
    if (fcntl(fd, F_GETLK, &l)) return fail("F_GETLK", f);
    if (l.l_type != F_UNLCK) { printf("FAIL type %d, want F_UNLCK (%d)\n", l.l_type, F_UNLCK); return 1; }
    printf("OK\n");
  } else if (!strcmp(op, "fsync") && argc == 3) {
    int fd = open(f, O_WRONLY | O_APPEND);
    if (fd < 0) return fail("open", f);
    if (write(fd, "s", 1) != 1) return fail("write", f);
    if (fsync(fd)) return fail("fsync", f);
    if (fdatasync(fd)) return fail("fdatasync", f);
    if (close(fd)) return fail("close", f);
    printf("OK\n");
  } else if ((!strcmp(op, "mkfiles") || !strcmp(op, "rmfiles")) && (argc == 4 || argc == 5)) {
    return files_op(f, atoi(argv[3]), argc == 5 ? atoi(argv[4]) : 1, op[0] == 'm');
  } else if ((!strcmp(op, "countdir") || !strcmp(op, "listdir")) && argc == 3) {
    DIR *d = opendir(f);
    if (!d) return fail("opendir", f);
    long n = 0;
    struct dirent *e;
    setvbuf(stdout, buf, _IOFBF, sizeof buf);
    errno = 0;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
      n++;
      if (op[0] == 'l') printf("%s\n", e->d_name);
    }
    if (errno) return fail("readdir", f);
    closedir(d);
    if (op[0] == 'c') printf("%ld\n", n);
    fflush(stdout);
  } else {
    fprintf(stderr, "p9x: bad op or arguments\n");
    return 2;
  }
  return 0;
}
