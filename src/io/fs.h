/* File-system and terminal checks the experiments need before they start work, without
 * a shell: is a path a folder, create a folder and its parents, is a descriptor a
 * terminal; and reading a small file (a JSON config) whole, with a size bound. */
#ifndef SER_IO_FS_H
#define SER_IO_FS_H

#include <stddef.h>

/* 1 when path names a folder (symbolic links followed), 0 otherwise (absent, a file, no access). */
int ser_fs_is_dir(const char *path);

/* 1 when path names a regular file (symbolic links followed), 0 otherwise (absent, a folder,
 * a device or pipe: never hash or parse those as files). */
int ser_fs_is_file(const char *path);

/* "dir/name" in a malloc'ed string (free it), NULL when out of memory. */
char *ser_fs_join(const char *dir, const char *name);

/* Creates path and any missing parents (mode 0777 before the umask), like `mkdir -p`.
 * 0 when the folder exists afterwards; SER_EINVAL for an empty path, SER_EIO naming the
 * component that could not be created and why (errno's text). */
int ser_fs_mkdir_p(const char *path);

/* Reads a whole small file (a JSON config) into a malloc'ed buffer (free it) of *len bytes
 * plus a terminating 0 (the text may hold 0 bytes of its own: parse by length). A file
 * larger than cap bytes is refused (SER_EFORMAT) without reading the rest; who names the
 * caller and what the file should be in messages, e.g. "whisper", "a Hugging Face config.json". */
int ser_fs_read_small(char **out, size_t *len, const char *path, size_t cap, const char *who, const char *expected);

/* 1 when the file descriptor fd is a terminal, else 0. */
int ser_fs_isatty(int fd);

#endif
