/* Batched small-file I/O with the GIL released once per batch.
 *
 * A 4 KiB GET reads k small files and a 4 KiB PUT creates k+m of them. Done from Python, each
 * open, read, write and close releases and retakes the GIL; while the event loop thread holds
 * it, every retake is a futex wait and a context switch, which cost more than the I/O itself
 * (measured: about 40% of a small GET's server CPU). These functions do a whole batch of such
 * calls in C with the GIL released once. s3free/storage/batch.py is the only caller and has a
 * pure-Python fallback with the same results, used when this module is not built.
 *
 * read_heads(paths: list[bytes], limit: int) -> list[bytes | int]
 *     The first `limit` bytes of each file (all of it if shorter), or the errno that failed.
 *
 * read_heads_cached(paths: list[bytes], limit: int) -> list[bytes | int]
 *     The same, but only from memory, with the GIL held: a name not in the dentry cache
 *     (openat2 RESOLVE_CACHED) or a page not in the page cache (preadv2 RWF_NOWAIT) gives
 *     EAGAIN instead of waiting for a disk, so the event loop itself may call it and leave
 *     what is not cached to a thread. Where the kernel cannot promise that (no openat2, no
 *     RWF_NOWAIT) every path gives EAGAIN.
 *
 * create_files(root_lengths: list[int], paths: list[bytes], chunks: list[list[buffer]],
 *              marker: bytes) -> list[int]
 *     Create each file, which must not exist (O_EXCL), and write its chunks; 0 or the errno
 *     that failed. Missing parent directories are made, but never the first root_length bytes
 *     of the path (the disk's root), and a directory right under it only while the root holds
 *     `marker` (format.json): a vanished or wiped disk is an error, not a directory to make.
 *     Nothing is fsynced: the caller syncs the disk before anything refers to the files. On
 *     error the file is removed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef O_NOATIME
#define O_NOATIME 0 /* not Linux: access times are the filesystem's business */
#endif

#if defined(__linux__) && defined(SYS_openat2) && defined(RWF_NOWAIT)
#include <linux/openat2.h>
#define HAVE_CACHED_READS 1
#endif

/* Reads never update access times: that would start a journal transaction per first read
 * (relatime), which can wait behind a commit. O_NOATIME needs the file's owner, so EPERM
 * retries without it. */
static int open_for_read(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
    if (fd < 0 && errno == EPERM)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd;
}

typedef struct {
    char *data;
    Py_ssize_t length;
    int error;
} head_result;

/* Read up to limit bytes of an open file into out (or out->error); closes fd. With nowait,
 * a page that is not in memory gives EAGAIN. */
static void read_fd(int fd, Py_ssize_t limit, int nowait, head_result *out) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
        out->error = errno;
        close(fd);
        return;
    }
    Py_ssize_t want = st.st_size < limit ? (Py_ssize_t)st.st_size : limit;
    /* One byte more than the size says, so a file that grew is still read to the limit. */
    Py_ssize_t room = want < limit ? want + 1 : want;
    char *buf = malloc(room > 0 ? (size_t)room : 1);
    if (buf == NULL) {
        out->error = ENOMEM;
        close(fd);
        return;
    }
    Py_ssize_t got = 0;
    while (got < room) {
        ssize_t n;
#ifdef HAVE_CACHED_READS
        if (nowait) {
            struct iovec iov = {buf + got, (size_t)(room - got)};
            n = preadv2(fd, &iov, 1, (off_t)got, RWF_NOWAIT);
        } else
#endif
            n = pread(fd, buf + got, (size_t)(room - got), (off_t)got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            out->error = errno;
            free(buf);
            close(fd);
            return;
        }
        if (n == 0)
            break;
        got += n;
    }
    if (close(fd) != 0 && errno != EINTR) {
        out->error = errno;
        free(buf);
        return;
    }
    out->data = buf;
    out->length = got;
}

static void read_one(const char *path, Py_ssize_t limit, head_result *out) {
    int fd = open_for_read(path);
    if (fd < 0) {
        out->error = errno;
        return;
    }
    read_fd(fd, limit, 0, out);
}

static void read_one_cached(const char *path, Py_ssize_t limit, head_result *out) {
#ifdef HAVE_CACHED_READS
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_RDONLY | O_CLOEXEC | O_NOATIME;
    how.resolve = RESOLVE_CACHED;
    long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
    if (fd < 0) {
        /* ENOSYS, EINVAL, E2BIG: a kernel without openat2 or RESOLVE_CACHED. EPERM: a file
         * this process does not own, whose read would update its access time (a journal
         * transaction that may wait). Either way: not from memory, a thread reads it. */
        int error = errno;
        out->error = (error == ENOSYS || error == EINVAL || error == E2BIG || error == EPERM)
            ? EAGAIN
            : error;
        return;
    }
    read_fd((int)fd, limit, 1, out);
    if (out->error == EOPNOTSUPP || out->error == EINVAL || out->error == ENOSYS)
        out->error = EAGAIN; /* a filesystem without RWF_NOWAIT */
#else
    out->error = EAGAIN;
#endif
}

static PyObject *read_many(PyObject *args, int cached) {
    PyObject *paths_arg;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "On", &paths_arg, &limit))
        return NULL;
    if (limit < 0) {
        PyErr_SetString(PyExc_ValueError, "limit must not be negative");
        return NULL;
    }
    PyObject *paths = PySequence_Fast(paths_arg, "paths must be a sequence of bytes");
    if (paths == NULL)
        return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(paths);
    const char **names = PyMem_Calloc(n ? n : 1, sizeof(char *));
    head_result *results = PyMem_Calloc(n ? n : 1, sizeof(head_result));
    PyObject *out = NULL;
    if (names == NULL || results == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(paths, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "paths must be bytes");
            goto done;
        }
        names[i] = PyBytes_AS_STRING(item);
    }
    if (cached) {
        for (Py_ssize_t i = 0; i < n; i++)
            read_one_cached(names[i], limit, &results[i]);
    } else {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < n; i++)
            read_one(names[i], limit, &results[i]);
        Py_END_ALLOW_THREADS
    }
    out = PyList_New(n);
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = results[i].error
            ? PyLong_FromLong(results[i].error)
            : PyBytes_FromStringAndSize(results[i].data, results[i].length);
        if (value == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, value);
    }
done:
    if (results != NULL)
        for (Py_ssize_t i = 0; i < n; i++)
            free(results[i].data);
    PyMem_Free(results);
    PyMem_Free(names);
    Py_DECREF(paths);
    return out;
}

static PyObject *read_heads(PyObject *self, PyObject *args) { return read_many(args, 0); }

static PyObject *read_heads_cached(PyObject *self, PyObject *args) {
    return read_many(args, 1);
}

/* Whether the disk whose root is the first root_length bytes of path is formatted: its root
 * holds `marker` (format.json). */
static int formatted(const char *path, size_t root_length, const char *marker) {
    char name[PATH_MAX];
    size_t marker_length = strlen(marker);
    if (root_length + 1 + marker_length + 1 > sizeof name)
        return 0;
    memcpy(name, path, root_length);
    name[root_length] = '/';
    memcpy(name + root_length + 1, marker, marker_length + 1);
    struct stat st;
    return stat(name, &st) == 0;
}

/* mkdir -p of path's parent directories, but never the root (its first root_length bytes),
 * and a directory right under it only while the disk is formatted (the root holds `marker`):
 * the data directories are made when a disk is formatted, so on a disk without its format
 * their absence means a wiped disk, not a directory to make (layout.DATA_DIRS). */
static int make_parents(char *path, size_t root_length, const char *marker) {
    char *slash = strrchr(path, '/');
    if (slash == NULL || (size_t)(slash - path) <= root_length)
        return ENOENT; /* the root itself is missing */
    *slash = '\0';
    char *above = strrchr(path, '/');
    if ((above == NULL || (size_t)(above - path) <= root_length) &&
        !formatted(path, root_length, marker)) {
        *slash = '/';
        return ENOENT; /* a top-level data directory of a wiped disk */
    }
    int error = 0;
    if (mkdir(path, 0777) != 0) {
        error = errno;
        if (error == ENOENT) {
            error = make_parents(path, root_length, marker);
            if (error == 0 && mkdir(path, 0777) != 0)
                error = errno == EEXIST ? 0 : errno;
        } else if (error == EEXIST) {
            struct stat st;
            error = (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) ? 0 : ENOTDIR;
        }
    }
    *slash = '/';
    return error;
}

static int write_all(int fd, struct iovec *iov, int count) {
    while (count > 0) {
        ssize_t n = writev(fd, iov, count > IOV_MAX ? IOV_MAX : count);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        while (count > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            count--;
        }
        if (count > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

typedef struct {
    char *path; /* a private copy: make_parents edits it in place */
    size_t root_length;
    struct iovec *iov;
    int count;
    int error;
} create_job;

static void create_one(create_job *job, const char *marker) {
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    int fd = open(job->path, flags, 0644);
    if (fd < 0 && errno == ENOENT) {
        int error = make_parents(job->path, job->root_length, marker);
        if (error != 0) {
            job->error = error;
            return;
        }
        fd = open(job->path, flags, 0644);
    }
    if (fd < 0) {
        job->error = errno;
        return;
    }
    int error = write_all(fd, job->iov, job->count);
    if (close(fd) != 0 && error == 0 && errno != EINTR)
        error = errno;
    if (error != 0) {
        unlink(job->path);
        job->error = error;
    }
}

static PyObject *create_files(PyObject *self, PyObject *args) {
    PyObject *roots_arg, *paths_arg, *chunks_arg;
    const char *marker;
    if (!PyArg_ParseTuple(
            args, "OOOy:create_files", &roots_arg, &paths_arg, &chunks_arg, &marker))
        return NULL;
    PyObject *roots = PySequence_Fast(roots_arg, "root_lengths must be a sequence");
    PyObject *paths = roots ? PySequence_Fast(paths_arg, "paths must be a sequence") : NULL;
    PyObject *chunks = paths ? PySequence_Fast(chunks_arg, "chunks must be a sequence") : NULL;
    if (chunks == NULL) {
        Py_XDECREF(roots);
        Py_XDECREF(paths);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(paths);
    PyObject *out = NULL;
    create_job *jobs = NULL;
    Py_buffer *views = NULL;
    Py_ssize_t total_views = 0, held = 0;
    if (PySequence_Fast_GET_SIZE(roots) != n || PySequence_Fast_GET_SIZE(chunks) != n) {
        PyErr_SetString(PyExc_ValueError, "root_lengths, paths and chunks differ in length");
        goto done;
    }
    jobs = PyMem_Calloc(n ? n : 1, sizeof(create_job));
    if (jobs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *list = PySequence_Fast_GET_ITEM(chunks, i);
        if (!PyList_Check(list)) {
            PyErr_SetString(PyExc_TypeError, "each file's chunks must be a list");
            goto done;
        }
        total_views += PyList_GET_SIZE(list);
    }
    views = PyMem_Calloc(total_views ? total_views : 1, sizeof(Py_buffer));
    if (views == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *path = PySequence_Fast_GET_ITEM(paths, i);
        if (!PyBytes_Check(path)) {
            PyErr_SetString(PyExc_TypeError, "paths must be bytes");
            goto done;
        }
        Py_ssize_t root_length = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(roots, i));
        if (root_length < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "root_lengths must not be negative");
            goto done;
        }
        jobs[i].root_length = (size_t)root_length;
        jobs[i].path = PyMem_Malloc((size_t)PyBytes_GET_SIZE(path) + 1);
        if (jobs[i].path == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        memcpy(jobs[i].path, PyBytes_AS_STRING(path), (size_t)PyBytes_GET_SIZE(path) + 1);
        PyObject *list = PySequence_Fast_GET_ITEM(chunks, i);
        Py_ssize_t count = PyList_GET_SIZE(list);
        jobs[i].iov = PyMem_Calloc(count ? count : 1, sizeof(struct iovec));
        if (jobs[i].iov == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t c = 0; c < count; c++) {
            if (PyObject_GetBuffer(PyList_GET_ITEM(list, c), &views[held], PyBUF_SIMPLE) != 0)
                goto done;
            jobs[i].iov[c].iov_base = views[held].buf;
            jobs[i].iov[c].iov_len = (size_t)views[held].len;
            held++;
        }
        jobs[i].count = (int)count;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++)
        create_one(&jobs[i], marker);
    Py_END_ALLOW_THREADS
    out = PyList_New(n);
    if (out == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyLong_FromLong(jobs[i].error);
        if (value == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        PyList_SET_ITEM(out, i, value);
    }
done:
    for (Py_ssize_t v = 0; v < held; v++)
        PyBuffer_Release(&views[v]);
    PyMem_Free(views);
    if (jobs != NULL)
        for (Py_ssize_t i = 0; i < n; i++) {
            PyMem_Free(jobs[i].path);
            PyMem_Free(jobs[i].iov);
        }
    PyMem_Free(jobs);
    Py_DECREF(roots);
    Py_DECREF(paths);
    Py_DECREF(chunks);
    return out;
}

static PyMethodDef methods[] = {
    {"read_heads", read_heads, METH_VARARGS,
     "read_heads(paths, limit) -> list of bytes (the file's first limit bytes) or errno"},
    {"read_heads_cached", read_heads_cached, METH_VARARGS,
     "read_heads_cached(paths, limit) -> the same from memory only, else EAGAIN; GIL held"},
    {"create_files", create_files, METH_VARARGS,
     "create_files(root_lengths, paths, chunks, marker) -> list of 0 or errno per new file"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_batchio", "Batched small-file I/O with the GIL released once.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__batchio(void) { return PyModule_Create(&module); }
