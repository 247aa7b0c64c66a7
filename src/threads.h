#ifndef ML_THREADS_H
#define ML_THREADS_H
/* The CPU backend's thread count (torch.set_num_threads / get_num_threads). */
int ml_get_num_threads(void);
int ml_set_num_threads(int n);
#endif
