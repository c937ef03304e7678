package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/verifyd/verifyd/service"
)

// keyFile is the on-disk form of the server's secrets (mode 0600).
// ServerKeys[0] hashes new codes and seals new jobs; the others are kept so
// that codes and queued jobs made before a rotation still verify and send.
type keyFile struct {
	ServerKeys []string `json:"server_keys"` // base64, 32 bytes each
	// SigningKey is read and kept but unused: key files written before
	// webhook keys became per account (stored sealed in the database) have it.
	SigningKey string `json:"signing_key,omitempty"`
}

// loadKeys takes keys from the environment (VERIFYD_SERVER_KEYS: base64
// keys separated by commas, current first) or from the key file, which is
// created on first start.
func loadKeys(path string, getenv func(string) string) (*service.Keys, error) {
	var kf keyFile
	if env := getenv("VERIFYD_SERVER_KEYS"); env != "" {
		kf.ServerKeys = strings.Split(env, ",")
	} else {
		if path == "" {
			return nil, errors.New("with a PostgreSQL --db every node needs the same keys: give --keys FILE (VERIFYD_KEYS_FILE) or VERIFYD_SERVER_KEYS")
		}
		var err error
		if kf, err = readOrCreateKeyFile(path); err != nil {
			return nil, err
		}
	}
	return kf.keys()
}

func (kf keyFile) keys() (*service.Keys, error) {
	var server [][]byte
	for i, s := range kf.ServerKeys {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("server key %d is not 32 bytes of base64", i)
		}
		server = append(server, b)
	}
	return service.NewKeys(server)
}

func newKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

func readOrCreateKeyFile(path string) (keyFile, error) {
	var kf keyFile
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		kf = keyFile{ServerKeys: []string{newKey()}}
		return kf, writeKeyFile(path, kf, true)
	}
	if err != nil {
		return kf, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return kf, fmt.Errorf("key file %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	if err := json.Unmarshal(b, &kf); err != nil {
		return kf, fmt.Errorf("key file %s: %w", path, err)
	}
	return kf, nil
}

// writeKeyFile writes atomically (temp file + rename), mode 0600. With
// exclusive, an existing file is never replaced.
func writeKeyFile(path string, kf keyFile, exclusive bool) error {
	b, _ := json.MarshalIndent(kf, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	if exclusive {
		if err := os.Link(tmp, path); err != nil {
			os.Remove(tmp)
			return err
		}
		return os.Remove(tmp)
	}
	return os.Rename(tmp, path)
}
