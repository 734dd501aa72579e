/* Recursive listing of the files under a folder, for corpus scanning.
 *
 * Paths come back sorted (byte order) so a scan is deterministic whatever order the file
 * system returns. Symbolic links are followed (corpora are often linked in), with a guard
 * against directory cycles. Entries that cannot be read (permissions, dangling links) are
 * reported in `problems` instead of failing the whole walk. */
#ifndef SER_DATA_WALK_H
#define SER_DATA_WALK_H
#include <stddef.h>

typedef struct {
  char **paths;        /* regular files, "dir/sub/name.ext" */
  size_t n, cap;
  char **problems;     /* "path: reason" for entries skipped while walking */
  size_t n_problems, cap_problems;
} ser_filelist;

/* Lists the regular files under dir (at most max_depth folder levels below it; <= 0 means
 * no limit). Hidden entries (names starting with '.') are skipped, as are their subtrees.
 * Fails (SER_EIO / SER_EINVAL) only when dir itself cannot be opened or is not a folder. */
int ser_corpus_walk(ser_filelist *out, const char *dir, int max_depth);
void ser_filelist_free(ser_filelist *list);

#endif
