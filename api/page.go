package api

import (
	"net/url"
	"strconv"

	"github.com/verifyd/verifyd"
)

// Paging defaults and bounds (D21, D22).
const (
	defaultPageSize = 25
	maxPageSize     = 250
)

// page is a requested page of a list.
type page struct {
	number int // 1-based
	size   int
}

func (p page) offset() int { return (p.number - 1) * p.size }

// parsePage reads page[number] and page[size] (D22): size 1–250 (default
// 25), number ≥ 1 (default 1), else 422 10015 naming the parameter.
func parsePage(q url.Values) (page, error) {
	p := page{number: 1, size: defaultPageSize}
	if v, ok := q["page[size]"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > maxPageSize {
			return p, &verifyd.Error{Code: verifyd.EINVALID, Parameter: "page[size]",
				Message: "page[size] must be an integer between 1 and 250."}
		}
		p.size = n
	}
	if v, ok := q["page[number]"]; ok {
		n, err := strconv.Atoi(v[0])
		// The upper bound only keeps offset() from overflowing.
		if err != nil || n < 1 || n > 1<<31/maxPageSize {
			return p, &verifyd.Error{Code: verifyd.EINVALID, Parameter: "page[number]",
				Message: "page[number] must be an integer of at least 1."}
		}
		p.number = n
	}
	return p, nil
}

// listMeta is the meta object of a paged list (§8).
type listMeta struct {
	PageNumber   int `json:"page_number"`
	PageSize     int `json:"page_size"`
	TotalPages   int `json:"total_pages"`
	TotalResults int `json:"total_results"`
}

// list is the paged-list envelope {"data": [...], "meta": {...}}.
type list[T any] struct {
	Data []T      `json:"data"`
	Meta listMeta `json:"meta"`
}

// meta echoes the effective page (the requested one, defaults filled) with
// the true totals. Past the end, data is empty and the totals stay true; an
// empty list with default paging reads page 1 of size 25, 0 pages (D22).
func (p page) meta(total int) listMeta {
	return listMeta{
		PageNumber:   p.number,
		PageSize:     p.size,
		TotalPages:   (total + p.size - 1) / p.size,
		TotalResults: total,
	}
}
