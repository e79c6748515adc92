"""The seven nodes of Crane's graph, one module and one function each."""
