package sip

import (
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"strings"
)

// embedded holds the prompts built by prompts/build.sh (espeak-ng + sox).
//
//go:embed prompts/*/*.wav
var embedded embed.FS

// Audio format of every prompt and of what is played: 8 kHz mono signed
// 16-bit little-endian PCM; diago encodes it to PCMU/PCMA in 20 ms frames.
const (
	sampleRate     = 8000
	bytesPerSample = 2
)

// Pauses in the spoken sentence.
const (
	introGapMs  = 400  // after the intro phrase
	digitGapMs  = 250  // between digits
	repeatGapMs = 1000 // between the two readings
)

// defaultLanguage is used when no prompt set matches m.Language (D28).
const defaultLanguage = "en"

// prompts holds, per language, the intro and the ten digits as raw PCM.
type prompts map[string]*promptSet

type promptSet struct {
	intro  []byte
	digits [10][]byte
}

// loadPrompts reads the embedded prompts, or the operator's from dir. A
// language folder missing a file is skipped; a file in the wrong format is an
// error. The default language must be present.
func loadPrompts(dir string) (prompts, error) {
	var fsys fs.FS
	if dir != "" {
		fsys = os.DirFS(dir)
	} else {
		sub, err := fs.Sub(embedded, "prompts")
		if err != nil {
			return nil, err
		}
		fsys = sub
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read prompts: %w", err)
	}
	out := prompts{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		set, err := loadSet(fsys, e.Name())
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[strings.ToLower(e.Name())] = set
	}
	if out[defaultLanguage] == nil {
		return nil, fmt.Errorf("prompts: no complete %q set (intro.wav and 0.wav … 9.wav)", defaultLanguage)
	}
	return out, nil
}

func loadSet(fsys fs.FS, lang string) (*promptSet, error) {
	read := func(name string) ([]byte, error) {
		b, err := fs.ReadFile(fsys, lang+"/"+name+".wav")
		if err != nil {
			return nil, err
		}
		pcm, err := wavPCM(b)
		if err != nil {
			return nil, fmt.Errorf("prompt %s/%s.wav: %w", lang, name, err)
		}
		return pcm, nil
	}
	set := &promptSet{}
	var err error
	if set.intro, err = read("intro"); err != nil {
		return nil, err
	}
	for d := range 10 {
		if set.digits[d], err = read(string(rune('0' + d))); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// wavPCM returns the samples of a RIFF WAVE file that holds 8 kHz mono
// 16-bit PCM, and an error for any other format.
func wavPCM(b []byte) ([]byte, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, errors.New("not a RIFF WAVE file")
	}
	var fmtOK bool
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:p+8]))
		body := b[p+8:]
		if size > len(body) {
			size = len(body) // tolerate a header that overstates the data
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, errors.New("short fmt chunk")
			}
			format := binary.LittleEndian.Uint16(body[0:2])
			channels := binary.LittleEndian.Uint16(body[2:4])
			rate := binary.LittleEndian.Uint32(body[4:8])
			bits := binary.LittleEndian.Uint16(body[14:16])
			if format == 0xFFFE && size >= 26 { // WAVE_FORMAT_EXTENSIBLE: sub-format GUID starts with the tag
				format = binary.LittleEndian.Uint16(body[24:26])
			}
			if format != 1 || channels != 1 || rate != sampleRate || bits != 16 {
				return nil, fmt.Errorf("format %d, %d channel(s), %d Hz, %d bit; want PCM (1), mono, 8000 Hz, 16 bit", format, channels, rate, bits)
			}
			fmtOK = true
		case "data":
			if !fmtOK {
				return nil, errors.New("data chunk before fmt chunk")
			}
			return body[:size&^1], nil
		}
		p += 8 + size + size&1 // chunks are word aligned
	}
	return nil, errors.New("no data chunk")
}

// match returns the prompt set for a BCP 47 tag: the exact tag, then its
// primary language subtag, then the default language.
func (p prompts) match(tag string) (string, *promptSet) {
	tag = strings.ToLower(strings.ReplaceAll(tag, "_", "-"))
	if s := p[tag]; s != nil {
		return tag, s
	}
	if base, _, _ := strings.Cut(tag, "-"); p[base] != nil {
		return base, p[base]
	}
	return defaultLanguage, p[defaultLanguage]
}

// reading returns one reading of the code: the intro, a pause, then each
// digit with a short pause between. Non-digits in code are skipped.
func (s *promptSet) reading(code string) []byte {
	out := append([]byte(nil), s.intro...)
	out = append(out, silence(introGapMs)...)
	first := true
	for _, r := range code {
		if r < '0' || r > '9' {
			continue
		}
		if !first {
			out = append(out, silence(digitGapMs)...)
		}
		first = false
		out = append(out, s.digits[r-'0']...)
	}
	return out
}

// silence returns ms milliseconds of silent PCM.
func silence(ms int) []byte {
	return make([]byte, sampleRate*ms/1000*bytesPerSample)
}

// dtmfFreqs are the row and column frequencies of each DTMF key.
var dtmfFreqs = map[rune][2]float64{
	'1': {697, 1209}, '2': {697, 1336}, '3': {697, 1477}, 'A': {697, 1633},
	'4': {770, 1209}, '5': {770, 1336}, '6': {770, 1477}, 'B': {770, 1633},
	'7': {852, 1209}, '8': {852, 1336}, '9': {852, 1477}, 'C': {852, 1633},
	'*': {941, 1209}, '0': {941, 1336}, '#': {941, 1477}, 'D': {941, 1633},
}

// dtmfTone returns an in-band DTMF key press as PCM: ms of the two tones at
// about -10 dBFS each, for trunks that did not negotiate telephone-event.
func dtmfTone(key rune, ms int) []byte {
	f, ok := dtmfFreqs[key]
	if !ok {
		return nil
	}
	n := sampleRate * ms / 1000
	out := make([]byte, n*bytesPerSample)
	for i := range n {
		t := float64(i) / sampleRate
		v := 0.3 * (math.Sin(2*math.Pi*f[0]*t) + math.Sin(2*math.Pi*f[1]*t))
		binary.LittleEndian.PutUint16(out[i*2:], uint16(int16(v*math.MaxInt16)))
	}
	return out
}

// validExtension reports whether ext holds only DTMF keys and the pauses
// w (0.5 s) and W (1 s).
func validExtension(ext string) bool {
	for _, r := range ext {
		if _, ok := dtmfFreqs[r]; !ok && r != 'w' && r != 'W' {
			return false
		}
	}
	return true
}
