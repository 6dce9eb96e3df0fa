/*
 * rss_launch.c - run a command and report its peak RSS.
 *
 *   hostile_rss REPORT_FILE COMMAND [ARG ...]
 *
 * Forks, execs COMMAND in the child, waits for it with wait4() and writes
 * "<ru_maxrss in KiB> <wait status>" to REPORT_FILE; exits with the child's
 * exit code (128 + signal when killed).
 *
 * Why a launcher: Linux keeps, across execve(), the high-water RSS of the
 * memory the process had before the exec (signal->maxrss).  A driver
 * spawned straight from pytest (fork or vfork of a 50 MB interpreter)
 * reports at least the interpreter's RSS as its own peak.  Forked from
 * this small program it starts from about 1 MB, so ru_maxrss measures the
 * driver.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct rusage ru;
    FILE *f;
    pid_t pid;
    int status = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: hostile_rss REPORT_FILE COMMAND [ARG ...]\n");
        return 2;
    }
    pid = fork();
    if (pid < 0) {
        perror("hostile_rss: fork");
        return 125;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror("hostile_rss: exec");
        _exit(127);
    }
    while (wait4(pid, &status, 0, &ru) < 0) {
        perror("hostile_rss: wait4");
        return 125;
    }
    f = fopen(argv[1], "w");
    if (!f) {
        perror("hostile_rss: report file");
        return 125;
    }
    fprintf(f, "%ld %d\n", ru.ru_maxrss, status);
    fclose(f);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
