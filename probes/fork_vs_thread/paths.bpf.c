/* fork-vs-thread, syscall tier: the tracepoint inside copy_process (probes/common.h path_seen). */
#include "clone.h"

/* kernel/fork.c: copy_process, once the new task exists */
#ifdef PATH_TASK_NEWTASK
PATH_POINT(task_newtask, PATH_TASK_NEWTASK)
#endif
