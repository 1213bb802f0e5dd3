package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// webFiles are the web page: plain HTML, CSS and JavaScript, no build
// step, nothing fetched from elsewhere, so that it works offline.
//
//go:embed web
var webFiles embed.FS

// contentSecurityPolicy is the page's Content-Security-Policy: its own
// files only, no inline script or style, no eval, no frames, and requests
// to its own origin only (the JSON API). Titles are data: the page writes
// them with textContent, and even an injected <script> would not run.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; object-src 'none'"

// asset is one file of the page, ready to serve.
type asset struct {
	name        string
	body        []byte
	etag        string // a hash of body: the files change only with the binary
	contentType string
}

// contentTypes are the types of the page's files, written here rather
// than taken from package mime, which reads the system's tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// webAssets reads the embedded files once.
func webAssets() map[string]*asset {
	assets := make(map[string]*asset)
	err := fs.WalkDir(webFiles, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := webFiles.ReadFile(p)
		if err != nil {
			return err
		}
		if contentTypes[path.Ext(p)] == "" {
			return fmt.Errorf("%s: no content type for its extension", p)
		}
		sum := sha256.Sum256(body)
		name := path.Base(p)
		assets[name] = &asset{name: name, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: contentTypes[path.Ext(name)]}
		return nil
	})
	if err != nil { // cannot happen: the files are in the binary
		panic(err)
	}
	return assets
}

// pageHandler serves the page: index.html at GET /, the other files at
// GET /web/NAME. It is registered on the command's own mux, beside the
// library's handler.
type pageHandler struct {
	assets map[string]*asset
}

func newPageHandler() *pageHandler { return &pageHandler{assets: webAssets()} }

// index serves GET /.
func (p *pageHandler) index(w http.ResponseWriter, r *http.Request) {
	p.serve(w, r, p.assets["index.html"])
}

// file serves GET /web/{name}.
func (p *pageHandler) file(w http.ResponseWriter, r *http.Request) {
	a := p.assets[r.PathValue("name")]
	if a == nil || a.name == "index.html" {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	p.serve(w, r, a)
}

func (p *pageHandler) serve(w http.ResponseWriter, r *http.Request, a *asset) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	// Revalidated on every load (a 304 when unchanged): a new binary's
	// page is never mixed with an old one's script.
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
