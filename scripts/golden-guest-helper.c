/* golden-guest-helper.c: tiny static tool for the golden-capture guest (busybox has no
 * setfattr/getfattr/flock). capture-golden.sh builds it with `cc -static` and puts it in
 * the guest's /bin as p9x. One operation per call, so each shows up as its own 9P
 * exchange:
 *   p9x setxattr FILE NAME VALUE     p9x getxattr FILE NAME     p9x listxattr FILE
 *   p9x removexattr FILE NAME        p9x flock FILE             (LOCK_EX then LOCK_UN)
 *   p9x posixlock FILE               (F_SETLK write lock, F_GETLK from a child, F_UNLCK)
 *   p9x fsync FILE                   p9x fdatasync FILE
 *   p9x pwrite FILE OFFSET STRING    p9x pread FILE OFFSET COUNT
 *   p9x excl FILE                    (open O_CREAT|O_EXCL; prints the errno name)
 *   p9x asuser UID GID CMD [ARGS]    run CMD with that uid/gid, no groups (busybox's
 *                                    setpriv has no --reuid)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

static int fail(const char *what, const char *f) {
  fprintf(stderr, "p9x: %s %s: %s (errno %d)\n", what, f, strerror(errno), errno);
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: p9x OP FILE [ARGS]\n"); return 2; }
  const char *op = argv[1], *f = argv[2];
  char buf[4096];
  if (!strcmp(op, "setxattr") && argc == 5) {
    if (setxattr(f, argv[3], argv[4], strlen(argv[4]), 0)) return fail(op, f);
  } else if (!strcmp(op, "getxattr") && argc == 4) {
    ssize_t n = getxattr(f, argv[3], buf, sizeof buf);
    if (n < 0) return fail(op, f);
    printf("%s=%.*s\n", argv[3], (int)n, buf);
  } else if (!strcmp(op, "listxattr") && argc == 3) {
    ssize_t n = listxattr(f, buf, sizeof buf);
    if (n < 0) return fail(op, f);
    for (ssize_t i = 0; i < n; i += strlen(buf + i) + 1) printf("xattr: %s\n", buf + i);
  } else if (!strcmp(op, "removexattr") && argc == 4) {
    if (removexattr(f, argv[3])) return fail(op, f);
  } else if (!strcmp(op, "flock") && argc == 3) {
    int fd = open(f, O_RDWR);
    if (fd < 0) return fail("open", f);
    if (flock(fd, LOCK_EX)) return fail(op, f);
    if (flock(fd, LOCK_UN)) return fail(op, f);
    close(fd);
  } else if (!strcmp(op, "posixlock") && argc == 3) {
    int fd = open(f, O_RDWR);
    if (fd < 0) return fail("open", f);
    struct flock l = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
    /* no local lock yet, so the kernel asks the server (Tgetlock). Kernel 6.1 sends
     * Tgetlock with type UNLCK, which diod 1.0.24 rejects (EINVAL): report, go on */
    if (fcntl(fd, F_GETLK, &l)) fail("F_GETLK (unlocked, asks the server)", f);
    else printf("F_GETLK (unlocked): type %d (F_UNLCK=%d)\n", l.l_type, F_UNLCK);
    l = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
    if (fcntl(fd, F_SETLK, &l)) return fail("F_SETLK", f);
    pid_t p = fork();
    if (p == 0) {  /* another process asks who holds it: F_GETLK */
      int fd2 = open(f, O_RDWR);
      struct flock q = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
      if (fd2 < 0 || fcntl(fd2, F_GETLK, &q)) _exit(fail("F_GETLK", f));
      printf("F_GETLK: type %d (F_UNLCK=%d) pid %d\n", q.l_type, F_UNLCK, (int)q.l_pid);
      _exit(0);
    }
    int st; waitpid(p, &st, 0);
    l.l_type = F_UNLCK;
    if (fcntl(fd, F_SETLK, &l)) return fail("F_UNLCK", f);
    close(fd);
  } else if ((!strcmp(op, "fsync") || !strcmp(op, "fdatasync")) && argc == 3) {
    int fd = open(f, O_RDWR);
    if (fd < 0) return fail("open", f);
    if (write(fd, "s", 1) != 1) return fail("write", f);
    if ((op[1] == 's' ? fsync(fd) : fdatasync(fd))) return fail(op, f);
    close(fd);
  } else if (!strcmp(op, "pwrite") && argc == 5) {
    int fd = open(f, O_WRONLY);
    if (fd < 0) return fail("open", f);
    if (pwrite(fd, argv[4], strlen(argv[4]), atoll(argv[3])) < 0) return fail(op, f);
    close(fd);
  } else if (!strcmp(op, "pread") && argc == 5) {
    int fd = open(f, O_RDONLY);
    size_t c = (size_t)atoll(argv[4]);
    if (fd < 0) return fail("open", f);
    if (c > sizeof buf) c = sizeof buf;
    ssize_t n = pread(fd, buf, c, atoll(argv[3]));
    if (n < 0) return fail(op, f);
    for (ssize_t i = 0; i < n; i++) if (buf[i] < 32 || buf[i] > 126) buf[i] = '.';
    printf("pread %zd: %.*s\n", n, (int)n, buf);
    close(fd);
  } else if (!strcmp(op, "excl") && argc == 3) {
    int fd = open(f, O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd >= 0) { printf("excl: created\n"); close(fd); }
    else printf("excl: %s\n", errno == EEXIST ? "EEXIST" : strerror(errno));
  } else if (!strcmp(op, "asuser") && argc >= 5) {
    gid_t g = (gid_t)atoi(argv[3]);
    if (setgroups(0, NULL) || setgid(g) || setuid((uid_t)atoi(f))) return fail(op, f);
    execvp(argv[4], argv + 4);
    return fail("exec", argv[4]);
  } else {
    fprintf(stderr, "p9x: bad op or arguments\n");
    return 2;
  }
  return 0;
}
