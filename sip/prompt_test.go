package sip

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPrompts_Embedded(t *testing.T) {
	p, err := loadPrompts("")
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"en", "de", "fr", "es", "ru"} {
		set := p[lang]
		if set == nil {
			t.Fatalf("no %s prompts", lang)
		}
		// Trimmed espeak-ng digits last about 0.2-0.8 s, intros 1-3 s.
		if d := len(set.intro) / bytesPerSample; d < sampleRate || d > 3*sampleRate {
			t.Errorf("%s intro is %d samples", lang, d)
		}
		for i, d := range set.digits {
			if n := len(d) / bytesPerSample; n < sampleRate/10 || n > sampleRate {
				t.Errorf("%s digit %d is %d samples", lang, i, n)
			}
		}
	}
}

func TestPrompts_Match(t *testing.T) {
	p, err := loadPrompts("")
	if err != nil {
		t.Fatal(err)
	}
	for tag, want := range map[string]string{
		"de-DE": "de", "DE": "de", "fr_CA": "fr", "es-419": "es", "ru": "ru",
		"en-US": "en", "pt-BR": "en", "": "en", "x": "en",
	} {
		if got, _ := p.match(tag); got != want {
			t.Errorf("match(%q) = %s, want %s", tag, got, want)
		}
	}
}

func TestPrompts_Reading(t *testing.T) {
	p, _ := loadPrompts("")
	set := p["en"]
	got := len(set.reading("1-2 3"))
	want := len(set.intro) + len(silence(introGapMs)) + len(set.digits[1]) + len(set.digits[2]) +
		len(set.digits[3]) + 2*len(silence(digitGapMs))
	if got != want {
		t.Fatalf("reading length %d, want %d (non-digits skipped)", got, want)
	}
}

// wav builds a minimal WAV file.
func wav(rate uint32, channels, bits uint16, samples int) []byte {
	data := make([]byte, samples*int(channels)*int(bits)/8)
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt ")
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, channels)
	b = binary.LittleEndian.AppendUint32(b, rate)
	b = binary.LittleEndian.AppendUint32(b, rate*uint32(channels*bits/8))
	b = binary.LittleEndian.AppendUint16(b, channels*bits/8)
	b = binary.LittleEndian.AppendUint16(b, bits)
	b = append(b, "LIST\x04\x00\x00\x00abcd"...) // a chunk to skip
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	b = append(b, data...)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

func TestWavPCM(t *testing.T) {
	if pcm, err := wavPCM(wav(8000, 1, 16, 800)); err != nil || len(pcm) != 1600 {
		t.Fatalf("8 kHz mono: %d bytes, %v", len(pcm), err)
	}
	for name, b := range map[string][]byte{
		"22kHz":  wav(22050, 1, 16, 10),
		"stereo": wav(8000, 2, 16, 10),
		"8bit":   wav(8000, 1, 8, 10),
		"junk":   []byte("not a wav file at all"),
	} {
		if _, err := wavPCM(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPrompts_Directory(t *testing.T) {
	dir := t.TempDir()
	write := func(lang, name string, b []byte) {
		os.MkdirAll(filepath.Join(dir, lang), 0o755)
		if err := os.WriteFile(filepath.Join(dir, lang, name+".wav"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, lang := range []string{"en", "it"} {
		write(lang, "intro", wav(8000, 1, 16, 8000))
		for d := range 10 {
			write(lang, string(rune('0'+d)), wav(8000, 1, 16, 1600))
		}
	}
	write("pl", "intro", wav(8000, 1, 16, 8000)) // incomplete: skipped
	p, err := loadPrompts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 2 || p["it"] == nil || len(p["en"].intro) != 16000 {
		t.Fatalf("loaded %d sets", len(p))
	}

	write("fr", "intro", wav(44100, 1, 16, 10)) // wrong format: an error, not a silent skip
	for d := range 10 {
		write("fr", string(rune('0'+d)), wav(8000, 1, 16, 1600))
	}
	if _, err := loadPrompts(dir); err == nil || !strings.Contains(err.Error(), "fr/intro.wav") {
		t.Fatalf("wrong format: %v", err)
	}

	if _, err := loadPrompts(t.TempDir()); err == nil {
		t.Fatal("a directory without English prompts was accepted")
	}
}

func TestDTMFTone(t *testing.T) {
	if tone := dtmfTone('5', 100); len(tone) != 1600 {
		t.Fatalf("tone is %d bytes", len(tone))
	}
	if dtmfTone('x', 100) != nil {
		t.Fatal("tone for a non-key")
	}
	if !validExtension("123*#ABCDwW") || validExtension("12a") {
		t.Fatal("validExtension")
	}
}
