"""Jobs: the queue's executable units, the contract their payloads are normalized to (task,
legacy, manifest, noop), attempts on workers, controls, steps, branches, publishing, and the
rules that tie a board task to its runs."""
