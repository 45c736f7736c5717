"""Jobs: the queue read model, dispatch of runnable jobs and the lease reaper."""
