package secrets

// RecordCodec is what the store calls on the value of every record it
// writes and reads: it seals the records of the kinds it was given
// (api.KindSecret) and passes the others through. The store's key of the
// record is the additional data, so a sealed value only opens under the
// key it was written to. A record of a sealed kind that is not sealed
// (written before encryption was turned on) is read as it is, and sealed
// when next written.
type RecordCodec struct {
	box   *Box
	kinds map[string]bool
}

// NewRecordCodec returns a codec that seals kinds with box.
func NewRecordCodec(box *Box, kinds ...string) *RecordCodec {
	c := &RecordCodec{box: box, kinds: map[string]bool{}}
	for _, k := range kinds {
		c.kinds[k] = true
	}
	return c
}

// Seals reports whether records of kind are sealed.
func (c *RecordCodec) Seals(kind string) bool { return c.kinds[kind] }

// Seal returns what the store writes for value.
func (c *RecordCodec) Seal(kind string, key, value []byte) ([]byte, error) {
	if !c.kinds[kind] {
		return value, nil
	}
	return c.box.Seal(value, key)
}

// Open returns the value of what the store read.
func (c *RecordCodec) Open(kind string, key, stored []byte) ([]byte, error) {
	if !c.kinds[kind] || !IsSealed(stored) {
		return stored, nil
	}
	return c.box.Open(stored, key)
}
