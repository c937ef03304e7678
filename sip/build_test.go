package sip

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestPromptsBuild runs prompts/build.sh (espeak-ng + sox) into a temporary
// directory and checks what it makes: the documented layout (<lang>/intro.wav
// and 0-9.wav for en, de, fr, es, ru, nothing else), every file an 8 kHz mono
// signed 16-bit PCM WAV that is not silent, loadable as an operator's
// PromptsDir, and — the build is deterministic (sox -D) — byte for byte the
// prompts embedded in the binary. Without espeak-ng or sox it skips, unless
// VERIFYD_REQUIRE_PEERS=1.
func TestPromptsBuild(t *testing.T) {
	for _, tool := range []string{"espeak-ng", "sox"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := tool + " not installed (apt-get install -y espeak-ng sox): prompt build test skipped"
			if os.Getenv("VERIFYD_REQUIRE_PEERS") == "1" {
				t.Fatal(msg + " but VERIFYD_REQUIRE_PEERS=1")
			}
			t.Skip(msg)
		}
	}
	out := filepath.Join(t.TempDir(), "prompts")
	cmd := exec.Command("bash", filepath.Join("prompts", "build.sh"), out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build.sh: %v\n%s", err, b)
	}

	langs := []string{"de", "en", "es", "fr", "ru"}
	names := []string{"0.wav", "1.wav", "2.wav", "3.wav", "4.wav", "5.wav", "6.wav", "7.wav", "8.wav", "9.wav", "intro.wav"}
	if got := dirNames(t, out); !slices.Equal(got, langs) {
		t.Fatalf("build.sh made folders %v, want %v", got, langs)
	}
	for _, lang := range langs {
		if got := dirNames(t, filepath.Join(out, lang)); !slices.Equal(got, names) {
			t.Fatalf("%s: files %v, want %v", lang, got, names)
		}
		for _, name := range names {
			path := filepath.Join(lang, name)
			built, err := os.ReadFile(filepath.Join(out, path))
			if err != nil {
				t.Fatal(err)
			}
			pcm := checkWAV(t, path, built)
			// A digit is at least 0.15 s of speech, the intro at least 1 s.
			minSamples := 1200
			if name == "intro.wav" {
				minSamples = 8000
			}
			if n := len(pcm) / 2; n < minSamples {
				t.Errorf("%s: %d samples, want at least %d", path, n, minSamples)
			}
			if r := rms(pcm); r < 300 {
				t.Errorf("%s: RMS %.0f of 32768: silent", path, r)
			}
			embedded, err := os.ReadFile(filepath.Join("prompts", path))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(built, embedded) {
				t.Errorf("%s: rebuilt file (%d bytes) differs from the embedded one (%d bytes): rebuild with prompts/build.sh and commit, or the build is not deterministic on this espeak-ng/sox", path, len(built), len(embedded))
			}
		}
	}
	// The same layout is what an operator's PromptsDir must hold.
	p, err := loadPrompts(out)
	if err != nil {
		t.Fatalf("the built prompts do not load as PromptsDir: %v", err)
	}
	for _, lang := range langs {
		if got, _ := p.match(lang); got != lang {
			t.Errorf("PromptsDir: language %s resolves to %q", lang, got)
		}
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// checkWAV checks b is a RIFF WAVE of 8 kHz mono 16-bit PCM and returns its
// samples.
func checkWAV(t *testing.T, name string, b []byte) []byte {
	t.Helper()
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		t.Fatalf("%s: not a RIFF WAVE file", name)
	}
	var format, channels, bits uint16
	var rate uint32
	var data []byte
	for i := 12; i+8 <= len(b); {
		id, size := string(b[i:i+4]), int(binary.LittleEndian.Uint32(b[i+4:]))
		body := b[i+8 : min(len(b), i+8+size)]
		switch id {
		case "fmt ":
			if len(body) < 16 {
				t.Fatalf("%s: short fmt chunk", name)
			}
			format, channels = binary.LittleEndian.Uint16(body), binary.LittleEndian.Uint16(body[2:])
			rate, bits = binary.LittleEndian.Uint32(body[4:]), binary.LittleEndian.Uint16(body[14:])
		case "data":
			data = body
		}
		i += 8 + size + size%2
	}
	if format != 1 || channels != 1 || rate != 8000 || bits != 16 {
		t.Fatalf("%s: format %d, %d channels, %d Hz, %d bits; want PCM (1), mono, 8000 Hz, 16 bits", name, format, channels, rate, bits)
	}
	if len(data) == 0 || len(data)%2 != 0 {
		t.Fatalf("%s: data chunk of %d bytes", name, len(data))
	}
	return data
}

// rms is the root mean square of s16le samples.
func rms(pcm []byte) float64 {
	var sum float64
	for i := 0; i+1 < len(pcm); i += 2 {
		v := float64(int16(binary.LittleEndian.Uint16(pcm[i:])))
		sum += v * v
	}
	return math.Sqrt(sum / float64(len(pcm)/2))
}
