"""The wallboard: a TV page and a live JSON/SSE feed of every queue's figures."""
