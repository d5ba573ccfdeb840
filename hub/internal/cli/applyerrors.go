package cli

import (
	"errors"
	"regexp"
	"strconv"
	"strings"

	"github.com/flotilla-edge/flotilla/hub/internal/client"
	"github.com/flotilla-edge/flotilla/pkg/manifest"
)

// itemField matches the field path of a problem the hub found in an item
// of the List apply sends: items[N], then the object's own path.
var itemField = regexp.MustCompile(`^items\[(\d+)\]\.(.+)$`)

// locateApplyProblems turns the problems the hub found in the objects
// apply sent (a taken node port, a full service CIDR: what only the hub
// can check) into problems of the files and documents they came from, as
// the ones found before sending are. Any other error is returned as it
// is.
func locateApplyProblems(err error, docs []manifest.Document) error {
	var se *client.StatusError
	if !errors.As(err, &se) || se.Status.Details == nil || len(se.Status.Details.Causes) == 0 {
		return err
	}
	var list manifest.ErrorList
	for _, c := range se.Status.Details.Causes {
		m := itemField.FindStringSubmatch(c.Field)
		if m == nil {
			return err
		}
		n, convErr := strconv.Atoi(m[1])
		_, msg, found := strings.Cut(c.Message, c.Field+": ")
		if convErr != nil || n >= len(docs) || !found {
			return err
		}
		d := docs[n]
		f := m[2]
		if d.Path != "" {
			f = d.Path + "." + f
		}
		list = append(list, &manifest.Error{Source: d.Source, Document: d.Index, Field: f, Msg: msg})
	}
	return list
}
