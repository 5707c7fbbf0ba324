package rpc

// ExceptionClass returns the Python exception class name, so that callers which only know the
// conductor's RemoteError interface (agent/conductor) can classify failures from this transport.
func (f *Failure) ExceptionClass() string { return f.Class }
