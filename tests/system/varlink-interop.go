// varlink-interop.go: osmosed seen by an independent Varlink implementation, varlink/go
// (Debian's golang-github-varlink-go-dev), for test-varlink-interop.sh. Prints TAP lines.
//
//	varlink-interop parse FILE...   each .varlink file parses with varlink/go's idl parser,
//	                                and declares the interface its file is named after
//	varlink-interop client ADDRESS  GetInfo, GetInterfaceDescription of every interface
//	                                (parsed again), and io.osmose calls, over unix:PATH
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/varlink/go/varlink"
	"github.com/varlink/go/varlink/idl"
)

var n, failed int

// The interface names the Varlink grammar allows since December 2021 (upper case too, as
// systemd's io.systemd.Resolve; varlink.github.io PR 19, varlink/go PR 29).
var nameRE = regexp.MustCompile(`^[A-Za-z]([-]*[A-Za-z0-9])*(\.[A-Za-z0-9]([-]*[A-Za-z0-9])*)+$`)

// Debian 12's varlink/go (0.4.0) predates that change and reads only lower-case interface
// names, so it is given the description with the name lower-cased; everything else (types,
// methods, errors, comments) its parser checks as it stands.
func forOldParser(desc string) string {
	re := regexp.MustCompile(`(?m)^interface\s+(\S+)`)
	return re.ReplaceAllStringFunc(desc, strings.ToLower)
}

// check parses desc as varlink/go does and reports under what.
func check(desc, want, what string) {
	m := regexp.MustCompile(`(?m)^interface\s+(\S+)`).FindStringSubmatch(desc)
	ok(m != nil && m[1] == want && nameRE.MatchString(m[1]), what+": interface "+want+" is a valid Varlink name")
	def, err := idl.New(forOldParser(desc))
	ok(err == nil, what+": varlink/go parses it", err)
	if err == nil {
		ok(def.Name == strings.ToLower(want), what+": varlink/go reads interface "+want, def.Name)
		ok(len(def.Methods) > 0, fmt.Sprintf("%s: %d methods, %d types, %d errors", what, len(def.Methods),
			len(def.Aliases), len(def.Errors)))
	}
}

func ok(cond bool, msg string, diag ...interface{}) {
	n++
	if cond {
		fmt.Printf("ok %d - %s\n", n, msg)
		return
	}
	failed++
	fmt.Printf("not ok %d - %s\n", n, msg)
	for _, d := range diag {
		for _, l := range strings.Split(fmt.Sprint(d), "\n") {
			fmt.Printf("#   %s\n", l)
		}
	}
}

func parse(files []string) {
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			ok(false, "read "+f, err)
			continue
		}
		base := filepath.Base(f)
		check(string(text), strings.TrimSuffix(base, ".varlink"), base)
	}
}

type record struct {
	ID   string                 `json:"id"`
	Body map[string]interface{} `json:"body"`
}

func client(address string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := varlink.NewConnection(ctx, address)
	if err != nil {
		ok(false, "varlink/go connects to "+address, err)
		return
	}
	defer c.Close()
	var vendor, product, version string
	var ifaces []string
	err = c.GetInfo(ctx, &vendor, &product, &version, nil, &ifaces)
	ok(err == nil && product == "osmosed", "GetInfo through varlink/go: "+vendor+" "+product+" "+version, err)
	ok(len(ifaces) >= 6, fmt.Sprintf("GetInfo lists the interfaces (%d)", len(ifaces)), ifaces)
	for _, name := range ifaces {
		desc, err := c.GetInterfaceDescription(ctx, name)
		ok(err == nil, "GetInterfaceDescription "+name+" through varlink/go", err)
		if err == nil {
			check(desc, name, "served "+name)
		}
	}

	var status struct {
		ID         string                   `json:"id"`
		Name       string                   `json:"name"`
		Subsystems []map[string]interface{} `json:"subsystems"`
	}
	err = c.Call(ctx, "io.osmose.Daemon.GetStatus", map[string]interface{}{}, &status)
	ok(err == nil && len(status.ID) == 32 && len(status.Subsystems) > 0,
		"io.osmose.Daemon.GetStatus through varlink/go (space "+status.Name+")", err)

	var put struct {
		ID   string `json:"id"`
		Time int64  `json:"time"`
	}
	err = c.Call(ctx, "io.osmose.Store.Put", map[string]interface{}{
		"collection": "interop/go", "body": map[string]interface{}{"from": "varlink/go", "t": 20.5},
	}, &put)
	ok(err == nil && put.ID != "" && put.Time > 0, "io.osmose.Store.Put through varlink/go ("+put.ID+")", err)
	var q struct {
		Records []record `json:"records"`
	}
	err = c.Call(ctx, "io.osmose.Store.Query", map[string]interface{}{"collection": "interop/go"}, &q)
	ok(err == nil && len(q.Records) == 1 && q.Records[0].ID == put.ID && q.Records[0].Body["from"] == "varlink/go",
		"io.osmose.Store.Query returns it", err, q)

	// An error reply, as varlink/go sees it: the qualified name, and its parameters.
	err = c.Call(ctx, "io.osmose.Store.Query", map[string]interface{}{"collection": "interop/none"}, &q)
	var verr *varlink.Error
	ok(errors.As(err, &verr) && verr.Name == "io.osmose.Store.NoSuchCollection",
		"an error reply reaches varlink/go as io.osmose.Store.NoSuchCollection", err)
	err = c.Call(ctx, "io.osmose.Store.NoSuchMethod", map[string]interface{}{}, nil)
	var mnf *varlink.MethodNotFound
	ok(errors.As(err, &mnf), "an unknown method is org.varlink.service.MethodNotFound for varlink/go", err)
	err = c.Call(ctx, "io.osmose.Ping", map[string]interface{}{}, nil)
	ok(err == nil, "io.osmose.Ping through varlink/go", err)
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: varlink-interop parse FILE... | client ADDRESS")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "parse":
		parse(os.Args[2:])
	case "client":
		client(os.Args[2])
	default:
		os.Exit(2)
	}
	if failed > 0 {
		os.Exit(1)
	}
}
