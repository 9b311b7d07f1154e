// Independent verifier of signed voluntary exits and BLS-to-execution
// changes, for ethkeygen's tests. It shares no code with the Go side: SSZ
// roots come from @chainsafe/ssz, BLS verification from @noble/curves, and
// the domain rules are written here from the consensus specs:
//   exit:       compute_domain(DOMAIN_VOLUNTARY_EXIT, CAPELLA_FORK_VERSION, gvr)  (EIP-7044)
//   bls change: compute_domain(DOMAIN_BLS_TO_EXECUTION_CHANGE, GENESIS_FORK_VERSION, gvr)
// An "encrypted_exit" item is an exit file encrypted for Lido's validator
// ejector: it is read as the ejector reads it (src/services/messages-processor:
// a "crypto" field, the fields its encryptedMessageDTO requires, pbkdf2
// only), decrypted with @chainsafe/bls-keystore's decrypt and the password
// as the ejector's MESSAGES_PASSWORD_FILE gives it (the file's bytes,
// newline and all), parsed as JSON and checked as an exit.
// Input (stdin): a JSON list of items; output (stdout): a JSON list of
// {ok, error, domain, signing_root}, one per item.
import { readFileSync } from 'node:fs';
import { decrypt } from '@chainsafe/bls-keystore';
import { ByteVectorType, ContainerType, UintBigintType } from '@chainsafe/ssz';
import { bls12_381 } from '@noble/curves/bls12-381.js';

const Bytes4 = new ByteVectorType(4);
const Bytes20 = new ByteVectorType(20);
const Bytes32 = new ByteVectorType(32);
const Bytes48 = new ByteVectorType(48);
const Uint64 = new UintBigintType(8);
const ForkData = new ContainerType({ currentVersion: Bytes4, genesisValidatorsRoot: Bytes32 });
const SigningData = new ContainerType({ objectRoot: Bytes32, domain: Bytes32 });
const VoluntaryExit = new ContainerType({ epoch: Uint64, validatorIndex: Uint64 });
const BLSToExecutionChange = new ContainerType({ validatorIndex: Uint64, fromBlsPubkey: Bytes48, toExecutionAddress: Bytes20 });

const DOMAIN_VOLUNTARY_EXIT = '04000000';
const DOMAIN_BLS_TO_EXECUTION_CHANGE = '0a000000';
const DST = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';

function bytes(s, n, what) {
  if (typeof s !== 'string' || !/^0x[0-9a-f]*$/.test(s) || s.length !== 2 + 2 * n) {
    throw new Error(`${what}: want 0x and ${n} bytes of lowercase hex`);
  }
  return Uint8Array.from(Buffer.from(s.slice(2), 'hex'));
}

function uint(s, what) {
  if (typeof s !== 'string' || !/^(0|[1-9][0-9]*)$/.test(s)) throw new Error(`${what}: not a decimal string`);
  const v = BigInt(s);
  if (v >= 1n << 64n) throw new Error(`${what}: over 64 bits`);
  return v;
}

const hex = (b) => '0x' + Buffer.from(b).toString('hex');

function computeDomain(type, forkVersion, gvr) {
  const root = ForkData.hashTreeRoot({ currentVersion: forkVersion, genesisValidatorsRoot: gvr });
  const d = new Uint8Array(32);
  d.set(Buffer.from(type, 'hex'), 0);
  d.set(root.subarray(0, 28), 4);
  return d;
}

function check(item) {
  const gvr = bytes(item.chain.genesis_validators_root, 32, 'genesis_validators_root');
  // The fork version each message is signed under, by the spec's rule, unless
  // the test asks for a deliberately wrong one ("genesis" for an exit,
  // "capella" for a BLS change).
  let domain, root, pubkey;
  const m = item.message;
  if (item.kind === 'exit') {
    const fork = item.domain_fork === 'genesis' ? item.chain.genesis_fork_version : item.chain.capella_fork_version;
    domain = computeDomain(DOMAIN_VOLUNTARY_EXIT, bytes(fork, 4, 'fork version'), gvr);
    root = VoluntaryExit.hashTreeRoot({ epoch: uint(m.epoch, 'epoch'), validatorIndex: uint(m.validator_index, 'validator_index') });
    pubkey = bytes(item.pubkey, 48, 'pubkey');
  } else if (item.kind === 'bls_change') {
    const fork = item.domain_fork === 'capella' ? item.chain.capella_fork_version : item.chain.genesis_fork_version;
    domain = computeDomain(DOMAIN_BLS_TO_EXECUTION_CHANGE, bytes(fork, 4, 'fork version'), gvr);
    pubkey = bytes(m.from_bls_pubkey, 48, 'from_bls_pubkey');
    root = BLSToExecutionChange.hashTreeRoot({
      validatorIndex: uint(m.validator_index, 'validator_index'),
      fromBlsPubkey: pubkey,
      toExecutionAddress: bytes(m.to_execution_address.toLowerCase(), 20, 'to_execution_address'),
    });
  } else {
    throw new Error(`unknown kind ${item.kind}`);
  }
  const signingRoot = SigningData.hashTreeRoot({ objectRoot: root, domain });
  const sig = bytes(item.signature, 96, 'signature');
  const bls = bls12_381.longSignatures;
  const ok = bls.verify(sig, bls.hash(signingRoot, DST), pubkey);
  return { ok, error: ok ? '' : 'signature does not verify', domain: hex(domain), signing_root: hex(signingRoot) };
}

function str(v, what) {
  if (typeof v !== 'string') throw new Error(`${what}: not a string`);
  return v;
}

function num(v, what) {
  if (typeof v !== 'number') throw new Error(`${what}: not a number`);
  return v;
}

function lit(want, v, what) {
  if (v !== want) throw new Error(`${what}: ${JSON.stringify(v)}, the ejector takes only ${JSON.stringify(want)}`);
  return v;
}

// The ejector's encryptedMessageDTO, field by field.
function encryptedMessage(j) {
  const c = j.crypto, kdf = c && c.kdf, ck = c && c.checksum, ci = c && c.cipher;
  if (!kdf || !kdf.params || !ck || !ck.params || !ci || !ci.params) throw new Error('crypto: missing modules');
  return {
    version: num(j.version, 'version'),
    uuid: str(j.uuid, 'uuid'),
    description: j.description === undefined ? undefined : str(j.description, 'description'),
    path: str(j.path, 'path'),
    pubkey: str(j.pubkey, 'pubkey'),
    crypto: {
      kdf: {
        function: lit('pbkdf2', kdf.function, 'kdf function'),
        params: { dklen: num(kdf.params.dklen, 'dklen'), c: num(kdf.params.c, 'c'), prf: lit('hmac-sha256', kdf.params.prf, 'prf'), salt: str(kdf.params.salt, 'salt') },
        message: lit('', kdf.message, 'kdf message'),
      },
      checksum: { function: lit('sha256', ck.function, 'checksum function'), params: {}, message: str(ck.message, 'checksum message') },
      cipher: { function: lit('aes-128-ctr', ci.function, 'cipher function'), params: { iv: str(ci.params.iv, 'iv') }, message: str(ci.message, 'cipher message') },
    },
  };
}

async function checkEncrypted(item) {
  const j = JSON.parse(item.encrypted);
  if (!('crypto' in j)) throw new Error('not an encrypted message (no crypto field)');
  const content = await decrypt(encryptedMessage(j), item.password);
  const exit = JSON.parse(new TextDecoder().decode(content));
  if (typeof exit.message !== 'object' || typeof exit.signature !== 'string') throw new Error('decrypted: not a signed exit');
  return check({ ...item, kind: 'exit', message: exit.message, signature: exit.signature });
}

const items = JSON.parse(readFileSync(0, 'utf8'));
const out = await Promise.all(items.map(async (item) => {
  try {
    return item.kind === 'encrypted_exit' ? await checkEncrypted(item) : check(item);
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e), domain: '', signing_root: '' };
  }
}));
process.stdout.write(JSON.stringify(out));
