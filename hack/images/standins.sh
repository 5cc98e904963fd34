#!/usr/bin/env bash
# Local stand-ins for the images' base images, for machines that cannot pull them (no registry
# here). The Dockerfiles keep the real bases; this builds an image of the same name from Debian
# packages with mmdebstrap and commits it into the given buildah storage, so
# `buildah bud --pull=never` finds it:
#   docker.io/library/rust:<V>-<suite>   Debian <suite> minbase + gcc, libc6-dev, make, pkg-config,
#                                        ca-certificates, and the host's own rustup toolchain <V>.x
#                                        (~/.rustup), laid out as the real image has it
#                                        (RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo)
#   gcr.io/distroless/cc-debian<N>:*     glibc, libgcc, ca-certificates, base-files, netbase, tzdata,
#                                        /etc/passwd with nonroot 65532; no shell at all
#   docker.io/library/debian:<suite>-slim (or debian:<suite>[-slim])  Debian <suite> minbase
#
#   hack/images/standins.sh STORAGE DOCKERFILE...
#
# Each stand-in carries a label with its key (kind, suite, packages, toolchain version, the host's
# extra CAs); an image whose key matches is kept, so they are built once per machine.
set -euo pipefail
# shellcheck source=hack/images/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

standin_version=1
key_label=dev.stressmix.standin-key
mirror=http://deb.debian.org/debian
security_mirror=http://deb.debian.org/debian-security

# The host's own extra CAs (here: a TLS-intercepting egress proxy's). Cargo in the Rust stand-in
# fetches crates over HTTPS through it; the real rust image on such a network needs the same.
host_extra_cas() {
	find /usr/local/share/ca-certificates -name '*.crt' -type f 2>/dev/null | sort
}

suite_of_debian_release() {
	case $1 in
	11) echo bullseye ;;
	12) echo bookworm ;;
	13) echo trixie ;;
	*) die "no Debian suite known for release $1" ;;
	esac
}

# mmdebstrap_rootfs SUITE VARIANT DIR PACKAGES...: a Debian root file system in DIR.
mmdebstrap_rootfs() {
	local suite=$1 variant=$2 dir=$3
	shift 3
	local include
	include=$(IFS=,; echo "$*")
	# Like the official slim images: no documentation, manual pages or locales. The extract hook
	# keeps the downloaded packages (in DEBS_DIR, when set) for the caller to pick from.
	# shellcheck disable=SC2016 # the hook is expanded by mmdebstrap's shell
	nice mmdebstrap --quiet --variant="$variant" ${include:+--include="$include"} \
		--extract-hook='[ -z "$DEBS_DIR" ] || cp "$1"/var/cache/apt/archives/*.deb "$DEBS_DIR"/' \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		"$suite" "$dir" \
		"deb $mirror $suite main" "deb $mirror $suite-updates main" \
		"deb $security_mirror $suite-security main" >&2
}

# commit_rootfs STORAGE DIR NAME KEY CONFIG-ARGS...: DIR as the single layer of image NAME.
commit_rootfs() {
	local storage=$1 dir=$2 name=$3 key=$4 ctr mnt
	shift 4
	ctr=$(buildah_at "$storage" from scratch)
	mnt=$(buildah_at "$storage" mount "$ctr")
	cp -a "$dir/." "$mnt/"
	buildah_at "$storage" umount "$ctr" >/dev/null
	buildah_at "$storage" config --os linux --arch amd64 --label "$key_label=$key" "$@" "$ctr"
	buildah_at "$storage" commit --quiet --rm "$ctr" "$name" >/dev/null
}

rust_standin() {
	local storage=$1 name=$2 tmp=$3 tag ver suite src tc key pkgs=(ca-certificates gcc libc6-dev make pkg-config)
	tag=${name##*:}
	ver=${tag%-*}
	suite=${tag##*-}
	# The newest host toolchain of that version (1.95 -> 1.95.0), as the rust:1.95 tag moves.
	src=$(find "$HOME/.rustup/toolchains" -maxdepth 1 -name "$ver*-x86_64-unknown-linux-gnu" | sort -V | tail -n1)
	[[ -n $src && -x $src/bin/cargo ]] || die "no rustup toolchain $ver in ~/.rustup/toolchains for the $name stand-in (rustup toolchain install $ver)"
	tc=$(basename "$src")
	key="v$standin_version rust $suite ${pkgs[*]} $("$src/bin/rustc" --version) cas:$(host_extra_cas | xargs -r cat | sha256sum | cut -c1-12)"
	standin_current "$storage" "$name" "$key" && return 0
	log "building stand-in $name: Debian $suite + host toolchain $tc"
	mmdebstrap_rootfs "$suite" minbase "$tmp/rootfs" "${pkgs[@]}"
	local cas
	mapfile -t cas < <(host_extra_cas)
	if [[ ${#cas[@]} -gt 0 ]]; then
		cp "${cas[@]}" "$tmp/rootfs/usr/local/share/ca-certificates/"
		chroot "$tmp/rootfs" update-ca-certificates >/dev/null
	fi
	# rustup's layout as rustup-init leaves it in the real image: proxies in $CARGO_HOME/bin.
	mkdir -p "$tmp/rootfs/usr/local/rustup/toolchains/$tc" "$tmp/rootfs/usr/local/cargo/bin"
	tar -C "$(readlink -f "$src")" --exclude=./share/doc --exclude=./lib/rustlib/src -c . |
		tar -C "$tmp/rootfs/usr/local/rustup/toolchains/$tc" -x
	install -m 0755 "$(command -v rustup)" "$tmp/rootfs/usr/local/cargo/bin/rustup"
	local p
	for p in cargo rustc rustdoc cargo-clippy clippy-driver rustfmt cargo-fmt; do
		[[ -e $src/bin/$p ]] && ln -s rustup "$tmp/rootfs/usr/local/cargo/bin/$p"
	done
	printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n\n[overrides]\n' "$tc" \
		>"$tmp/rootfs/usr/local/rustup/settings.toml"
	chmod -R a+w "$tmp/rootfs/usr/local/rustup" "$tmp/rootfs/usr/local/cargo"
	commit_rootfs "$storage" "$tmp/rootfs" "$name" "$key" \
		--env RUSTUP_HOME=/usr/local/rustup --env CARGO_HOME=/usr/local/cargo \
		--env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env "RUST_VERSION=${tc%%-*}" --cmd /bin/bash
}

distroless_cc_standin() {
	local storage=$1 name=$2 tmp=$3 suite key deb p
	local pkgs=(base-files netbase tzdata libc6 libgcc-s1 ca-certificates)
	suite=$(suite_of_debian_release "$(sed -n 's|.*/cc-debian\([0-9]*\).*|\1|p' <<<"$name")")
	key="v$standin_version distroless-cc $suite ${pkgs[*]}"
	standin_current "$storage" "$name" "$key" && return 0
	log "building stand-in $name: Debian $suite ${pkgs[*]} (unpacked only, no shell)"
	# "extract" downloads the packages with their dependencies and unpacks all of them; only the
	# listed ones (and gcc-*-base, libgcc's companion) go into the image, so no shell comes along.
	mkdir -p "$tmp/rootfs" "$tmp/debs"
	DEBS_DIR=$tmp/debs mmdebstrap_rootfs "$suite" extract "$tmp/extract" "${pkgs[@]}"
	for p in "${pkgs[@]}" 'gcc-*-base'; do
		# shellcheck disable=SC2231 # p is a name or a glob (gcc-*-base), never has spaces
		for deb in "$tmp/debs/"${p}_*.deb; do
			[[ -f $deb ]] || die "no $p package among the downloaded ones"
			dpkg-deb -x "$deb" "$tmp/rootfs"
		done
	done
	local r=$tmp/rootfs
	rm -rf "$r/usr/share/doc" "$r/usr/share/man" "$r/usr/share/locale" "$r/usr/share/info"
	# What ca-certificates' postinst would generate: the bundle of every certificate it ships.
	mkdir -p "$r/etc/ssl/certs"
	find "$r/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat >"$r/etc/ssl/certs/ca-certificates.crt"
	# distroless's users: root, nobody and nonroot (65532), whose home is /home/nonroot.
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n' >"$r/etc/group"
	mkdir -p "$r/root" "$r/home/nonroot" "$r/tmp"
	chmod 0700 "$r/root"
	chmod 1777 "$r/tmp"
	chown 65532:65532 "$r/home/nonroot"
	local shells
	shells=$(find "$r" \( -name sh -o -name bash -o -name dash -o -name busybox \) -print)
	[[ -z $shells ]] || die "the distroless stand-in would hold a shell: $shells"
	local user=0:0
	[[ $name == *:nonroot ]] && user=65532:65532
	commit_rootfs "$storage" "$r" "$name" "$key" \
		--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
		--user "$user" --workingdir "$([[ $user == 0:0 ]] && echo / || echo /home/nonroot)"
}

debian_standin() {
	local storage=$1 name=$2 tmp=$3 tag suite key
	tag=${name##*:}
	suite=${tag%-slim}
	key="v$standin_version debian-minbase $suite"
	standin_current "$storage" "$name" "$key" && return 0
	log "building stand-in $name: Debian $suite minbase"
	mmdebstrap_rootfs "$suite" minbase "$tmp/rootfs"
	commit_rootfs "$storage" "$tmp/rootfs" "$name" "$key" \
		--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd bash
}

# standin_current STORAGE NAME KEY: true when NAME exists in STORAGE and was built for KEY.
standin_current() {
	local have
	have=$(buildah_at "$1" inspect --type image --format "{{index .OCIv1.Config.Labels \"$key_label\"}}" "$2" 2>/dev/null) || return 1
	if [[ $have == "$3" ]]; then
		log "stand-in $2 is current ($3)"
		return 0
	fi
	return 1
}

# Docker's reference normalisation: debian:x -> docker.io/library/debian:x.
normalise() {
	local n=$1 first=${1%%/*}
	if [[ $n != */* ]]; then
		n=docker.io/library/$n
	elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
		n=docker.io/$n
	fi
	printf '%s\n' "$n"
}

main() {
	[[ $# -ge 2 ]] || { sed -n '2,20p' "$0" >&2; exit 2; }
	local storage=$1 df base name
	shift
	tmp=
	trap 'rm -rf "$tmp"' EXIT
	apt_install buildah mmdebstrap
	for df in "$@"; do
		while read -r base; do
			[[ -n $base ]] || continue
			name=$(normalise "$base")
			tmp=$(mktemp -d "$images_cache/standin.XXXXXX")
			case $name in
			docker.io/library/rust:*-*) rust_standin "$storage" "$name" "$tmp" ;;
			gcr.io/distroless/cc-debian*) distroless_cc_standin "$storage" "$name" "$tmp" ;;
			docker.io/library/debian:*) debian_standin "$storage" "$name" "$tmp" ;;
			*) die "$df: no stand-in known for base image $base" ;;
			esac
			rm -rf "$tmp"
		done < <(python3 "$images_root/hack/images/context.py" bases "$df")
	done
}

mkdir -p "$images_cache"
cd "$images_root"
main "$@"
