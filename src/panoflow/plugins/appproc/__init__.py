"""Application code nodes as processes of their own: the shared-memory frame pool (:mod:`.memory`), the
runtime's side of the SDK protocol (:mod:`.server`) and the runner that starts the process in its sandbox
(:mod:`.runner`)."""
