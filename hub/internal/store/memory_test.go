package store

import "testing"

func openMemory(t *testing.T) Store {
	s := NewMemory()
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestMemory(t *testing.T) { testStore(t, openMemory) }

func BenchmarkMemoryUpdate(b *testing.B) { benchUpdate(b, NewMemory()) }

func BenchmarkMemoryList10k(b *testing.B) { benchList(b, NewMemory(), 10_000) }
