package e2e

// The npm package @embedgate/sdk as a frontend installs it: `npm pack` in
// sdk/, then a scratch project installs the tarball and (1) imports every
// entry in Node with no browser global touched, (2) type-checks small
// TypeScript consumers of every entry, the React component against
// @types/react, with tsc --noEmit --strict, (3) renders the React
// component in Chromium from the installed files (bundler-free, an import
// map; e2e/browser/tests/react.test.mjs with EMBEDGATE_PKG_DIR) and signs in.

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// packSDK runs npm pack in sdk/ and installs the tarball in a new scratch
// project; it returns the project's folder.
func packSDK(t *testing.T, npm string) string {
	t.Helper()
	dir := t.TempDir()
	pack := exec.Command(npm, "pack", "--silent", "--pack-destination", dir)
	pack.Dir = filepath.Join(repoRoot(), "sdk")
	out, err := pack.Output()
	if err != nil {
		t.Fatalf("npm pack: %v", err)
	}
	lines := strings.Fields(strings.TrimSpace(string(out)))
	if len(lines) == 0 {
		t.Fatal("npm pack named no tarball")
	}
	tarball := filepath.Join(dir, lines[len(lines)-1])
	project := filepath.Join(dir, "consumer")
	if err := os.MkdirAll(project, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(project, "package.json"), []byte(`{"name":"consumer","private":true,"type":"module"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// React is an optional peer: not fetched (no network); the import test
	// gets the suite's copy below, and tsc the suite's @types/react.
	install := exec.Command(npm, "install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", "--legacy-peer-deps", tarball)
	install.Dir = project
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s: %v\n%s", filepath.Base(tarball), err, out)
	}
	if err := os.MkdirAll(filepath.Join(project, "node_modules", "@types"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dep := range []string{"react", "react-dom", "scheduler", "@types/react"} {
		if err := os.Symlink(filepath.Join(browserDir(), "node_modules", dep), filepath.Join(project, "node_modules", dep)); err != nil {
			t.Fatal(err)
		}
	}
	return project
}

func TestNpmPackage(t *testing.T) {
	node := requireNodeSuite(t)
	npm := requireTool(t, "npm", "EMBEDGATE_NPM", "apt-get install npm", "npm")
	project := packSDK(t, npm)
	pkg := filepath.Join(project, "node_modules", "@embedgate", "sdk")
	for _, f := range []string{"package.json", "sdk.js", "sdk.d.ts", "index.js", "element.js", "react.js", "react.d.ts", "element.d.ts"} {
		if _, err := os.Stat(filepath.Join(pkg, f)); err != nil {
			t.Errorf("the tarball has no %s", f)
		}
	}
	// The file the gateway serves is the package's.
	packed, err := os.ReadFile(filepath.Join(pkg, "sdk.js"))
	if err != nil {
		t.Fatal(err)
	}
	source, err := os.ReadFile(filepath.Join(repoRoot(), "sdk", "sdk.js"))
	if err != nil {
		t.Fatal(err)
	}
	if string(packed) != string(source) {
		t.Error("the packed sdk.js differs from sdk/sdk.js")
	}

	t.Run("node-import", func(t *testing.T) {
		for _, f := range []string{"import.mjs", "consumer.ts"} {
			copyFile(t, filepath.Join(browserDir(), "package", f), filepath.Join(project, f))
		}
		cmd := exec.Command(node, "import.mjs")
		cmd.Dir = project
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("node import.mjs: %v\n%s", err, out)
		}
		var got struct {
			Mount, Tag, Component string
			Events                []string
			Global                bool
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("node import.mjs: %v\n%s", err, out)
		}
		if got.Mount != "function" || got.Component != "function" || got.Tag != "embed-gate" || got.Global {
			t.Errorf("imports: %s", out)
		}
		if !strings.Contains(strings.Join(got.Events, " "), "embed:error") {
			t.Errorf("events: %v", got.Events)
		}
	})

	// The main entry, the element and the React component (against
	// @types/react), each the way a consumer imports it.
	t.Run("tsc-strict", func(t *testing.T) {
		consumers := []string{"consumer.ts", "consumer-react.ts"}
		for _, f := range consumers {
			copyFile(t, filepath.Join(browserDir(), "package", f), filepath.Join(project, f))
		}
		tsc := filepath.Join(browserDir(), "node_modules", "typescript", "bin", "tsc")
		cmd := exec.Command(node, append([]string{tsc, "--noEmit", "--strict", "--module", "nodenext", "--moduleResolution", "nodenext",
			"--target", "es2022", "--lib", "es2022,dom", "--skipLibCheck", "false"}, consumers...)...)
		cmd.Dir = project
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tsc --noEmit --strict: %v\n%s", err, out)
		}
	})

	t.Run("react-in-chromium", func(t *testing.T) {
		exe := requireBrowser(t, "chromium")
		// This run is the one scenario, whatever narrows TestBrowser's.
		t.Setenv("EMBEDGATE_BROWSER_GREP", "")
		env := startBrowserEnv(t, "")
		runNodeSuite(t, node, env.g, nodeRun{
			Regime: "chromium", Browser: exe, Files: []string{filepath.Join("tests", "react.test.mjs")},
			Env: append(env.browserVars(), "EMBEDGATE_PKG_DIR="+pkg), Artifacts: "npm-package",
			Timeout: 3 * time.Minute,
		})
	})
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
