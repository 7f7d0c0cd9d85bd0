package frame

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

type wireVector struct {
	name    string
	typ     MsgType
	ser     Serializer
	flags   Flags
	ok      bool
	object  string
	method  string
	payload string
}

// Captured from Pyro4 4.82 proxies talking to a Pyro4 daemon (payloads longer than
// 1200 bytes are cut to their first 1200 bytes, which is still past PeekLimit).
var wireVectors = []wireVector{
	{name: "basic/serpent/Connect/obj_x", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'obj.x'}"},
	{name: "basic/serpent/Invoke/obj_x", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "# serpent utf-8 python3.2\n('obj.x','meth',(1,'a'),{'k':2})"},
	{name: "basic/serpent/Connect/o_q", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "o'q", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':\"o'q\"}"},
	{name: "basic/serpent/Invoke/o_q", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "o'q", method: "meth",
		payload: "# serpent utf-8 python3.2\n(\"o'q\",'meth',(1,'a'),{'k':2})"},
	{name: "basic/serpent/Connect/o_b__", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "o\\b\"'", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'o\\\\b\"\\''}"},
	{name: "basic/serpent/Invoke/o_b__", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "o\\b\"'", method: "meth",
		payload: "# serpent utf-8 python3.2\n('o\\\\b\"\\'','meth',(1,'a'),{'k':2})"},
	{name: "basic/serpent/Connect/\u00fcn\u00ef__", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "\u00fcn\u00ef\u20ac\U0001f600", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x80'}"},
	{name: "basic/serpent/Invoke/\u00fcn\u00ef__", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "\u00fcn\u00ef\u20ac\U0001f600", method: "meth",
		payload: "# serpent utf-8 python3.2\n('\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x80','meth',(1,'a'),{'k':2})"},
	{name: "basic/serpent/Connect/a____", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "a\u007f\u0001\u0378\U000e0001", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'a\\x7f\\x01\\u0378\\U000e0001'}"},
	{name: "basic/serpent/Invoke/a____", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "a\u007f\u0001\u0378\U000e0001", method: "meth",
		payload: "# serpent utf-8 python3.2\n('a\\x7f\\x01\\u0378\\U000e0001','meth',(1,'a'),{'k':2})"},
	{name: "basic/serpent/Connect/same", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "same", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'same'}"},
	{name: "basic/serpent/Invoke/same", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "same", method: "meth",
		payload: "# serpent utf-8 python3.2\n('same','meth',(1,'a'),{'k':2})"},
	{name: "basic/serpent/Connect/xxxxxxxx", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'}"},
	{name: "basic/serpent/Invoke/xxxxxxxx", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", method: "meth",
		payload: "# serpent utf-8 python3.2\n('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx','meth',(1,'a'),{'k':2})"},
	{name: "bigarg/serpent/Connect", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'obj.x'}"},
	{name: "bigarg/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "# serpent utf-8 python3.2\n('obj.x','meth',('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
	{name: "kwargs/serpent/Connect", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'obj.x'}"},
	{name: "kwargs/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "# serpent utf-8 python3.2\n('obj.x','meth',(),{'alpha':1,'beta':[1,2,{'c':'d'}]})"},
	{name: "samemeth/serpent/Connect", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "same", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'same'}"},
	{name: "samemeth/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "same", method: "same",
		payload: "# serpent utf-8 python3.2\n('same','same',(),{})"},
	{name: "umeth/serpent/Connect", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'obj.x'}"},
	{name: "umeth/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "obj.x", method: "m\u00e9th'\"\\",
		payload: "# serpent utf-8 python3.2\n('obj.x','m\xc3\xa9th\\'\"\\\\',(1,),{})"},
	{name: "batch/serpent/Connect", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'obj.x'}"},
	{name: "batch/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 8, ok: true, object: "obj.x", method: "<batch>",
		payload: "# serpent utf-8 python3.2\n('obj.x','<batch>',[('meth',(1,),{}),('meth',(2,),{})],None)"},
	{name: "oneway/serpent/Connect", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'obj.x'}"},
	{name: "oneway/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "# serpent utf-8 python3.2\n('obj.x','meth',(3,),{})"},
	{name: "handshake/serpent/Connect", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':{'user':'bob','object':'decoy','n':[1,2.5,None,True]},'object':'obj.x'}"},
	{name: "handshake/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "# serpent utf-8 python3.2\n('obj.x','meth',(),{})"},
	{name: "blob/serpent/Connect", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'obj.x'}"},
	{name: "blob/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 64, ok: true, object: "obj.x", method: "meth",
		payload: "# serpent utf-8 python3.2\n('obj.x','meth',('a',1),{})"},
	{name: "blob2/serpent/Connect", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'obj.x'}"},
	{name: "blob2/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 64, ok: true, object: "obj.x", method: "meth",
		payload: "# serpent utf-8 python3.2\n('obj.x','meth',('a',),{})"},
	{name: "basic/json/Connect/obj_x", typ: Connect, ser: JSON, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"obj.x\"}"},
	{name: "basic/json/Invoke/obj_x", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "{\"object\": \"obj.x\", \"method\": \"meth\", \"params\": [1, \"a\"], \"kwargs\": {\"k\": 2}}"},
	{name: "basic/json/Connect/o_q", typ: Connect, ser: JSON, flags: 16, ok: true, object: "o'q", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"o'q\"}"},
	{name: "basic/json/Invoke/o_q", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "o'q", method: "meth",
		payload: "{\"object\": \"o'q\", \"method\": \"meth\", \"params\": [1, \"a\"], \"kwargs\": {\"k\": 2}}"},
	{name: "basic/json/Connect/o_b__", typ: Connect, ser: JSON, flags: 16, ok: true, object: "o\\b\"'", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"o\\\\b\\\"'\"}"},
	{name: "basic/json/Invoke/o_b__", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "o\\b\"'", method: "meth",
		payload: "{\"object\": \"o\\\\b\\\"'\", \"method\": \"meth\", \"params\": [1, \"a\"], \"kwargs\": {\"k\": 2}}"},
	{name: "basic/json/Connect/\u00fcn\u00ef__", typ: Connect, ser: JSON, flags: 16, ok: true, object: "\u00fcn\u00ef\u20ac\U0001f600", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x80\"}"},
	{name: "basic/json/Invoke/\u00fcn\u00ef__", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "\u00fcn\u00ef\u20ac\U0001f600", method: "meth",
		payload: "{\"object\": \"\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x80\", \"method\": \"meth\", \"params\": [1, \"a\"], \"kwargs\": {\"k\": 2}}"},
	{name: "basic/json/Connect/a____", typ: Connect, ser: JSON, flags: 16, ok: true, object: "a\u007f\u0001\u0378\U000e0001", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"a\x7f\\u0001\xcd\xb8\xf3\xa0\x80\x81\"}"},
	{name: "basic/json/Invoke/a____", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "a\u007f\u0001\u0378\U000e0001", method: "meth",
		payload: "{\"object\": \"a\x7f\\u0001\xcd\xb8\xf3\xa0\x80\x81\", \"method\": \"meth\", \"params\": [1, \"a\"], \"kwargs\": {\"k\": 2}}"},
	{name: "basic/json/Connect/same", typ: Connect, ser: JSON, flags: 16, ok: true, object: "same", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"same\"}"},
	{name: "basic/json/Invoke/same", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "same", method: "meth",
		payload: "{\"object\": \"same\", \"method\": \"meth\", \"params\": [1, \"a\"], \"kwargs\": {\"k\": 2}}"},
	{name: "basic/json/Connect/xxxxxxxx", typ: Connect, ser: JSON, flags: 16, ok: true, object: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"},
	{name: "basic/json/Invoke/xxxxxxxx", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", method: "meth",
		payload: "{\"object\": \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\", \"method\": \"meth\", \"params\": [1, \"a\"], \"kwargs\": {\"k\": 2}}"},
	{name: "bigarg/json/Connect", typ: Connect, ser: JSON, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"obj.x\"}"},
	{name: "bigarg/json/Invoke", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "{\"object\": \"obj.x\", \"method\": \"meth\", \"params\": [\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
	{name: "kwargs/json/Connect", typ: Connect, ser: JSON, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"obj.x\"}"},
	{name: "kwargs/json/Invoke", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "{\"object\": \"obj.x\", \"method\": \"meth\", \"params\": [], \"kwargs\": {\"alpha\": 1, \"beta\": [1, 2, {\"c\": \"d\"}]}}"},
	{name: "samemeth/json/Connect", typ: Connect, ser: JSON, flags: 16, ok: true, object: "same", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"same\"}"},
	{name: "samemeth/json/Invoke", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "same", method: "same",
		payload: "{\"object\": \"same\", \"method\": \"same\", \"params\": [], \"kwargs\": {}}"},
	{name: "umeth/json/Connect", typ: Connect, ser: JSON, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"obj.x\"}"},
	{name: "umeth/json/Invoke", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "obj.x", method: "m\u00e9th'\"\\",
		payload: "{\"object\": \"obj.x\", \"method\": \"m\xc3\xa9th'\\\"\\\\\", \"params\": [1], \"kwargs\": {}}"},
	{name: "batch/json/Connect", typ: Connect, ser: JSON, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"obj.x\"}"},
	{name: "batch/json/Invoke", typ: Invoke, ser: JSON, flags: 8, ok: true, object: "obj.x", method: "<batch>",
		payload: "{\"object\": \"obj.x\", \"method\": \"<batch>\", \"params\": [[\"meth\", [1], {}], [\"meth\", [2], {}]], \"kwargs\": null}"},
	{name: "oneway/json/Connect", typ: Connect, ser: JSON, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"obj.x\"}"},
	{name: "oneway/json/Invoke", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "{\"object\": \"obj.x\", \"method\": \"meth\", \"params\": [3], \"kwargs\": {}}"},
	{name: "handshake/json/Connect", typ: Connect, ser: JSON, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "{\"handshake\": {\"user\": \"bob\", \"object\": \"decoy\", \"n\": [1, 2.5, null, true]}, \"object\": \"obj.x\"}"},
	{name: "handshake/json/Invoke", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "{\"object\": \"obj.x\", \"method\": \"meth\", \"params\": [], \"kwargs\": {}}"},
	{name: "blob/json/Connect", typ: Connect, ser: JSON, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"obj.x\"}"},
	{name: "blob/json/Invoke", typ: Invoke, ser: JSON, flags: 64, ok: true, object: "obj.x", method: "meth",
		payload: "{\"object\": \"obj.x\", \"method\": \"meth\", \"params\": [\"a\", 1], \"kwargs\": {}}"},
	{name: "blob2/json/Connect", typ: Connect, ser: JSON, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "{\"handshake\": \"hello\", \"object\": \"obj.x\"}"},
	{name: "blob2/json/Invoke", typ: Invoke, ser: JSON, flags: 64, ok: true, object: "obj.x", method: "meth",
		payload: "{\"object\": \"obj.x\", \"method\": \"meth\", \"params\": [\"a\"], \"kwargs\": {}}"},
	{name: "basic/marshal/Connect/obj_x", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x05obj.x0"},
	{name: "basic/marshal/Invoke/obj_x", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: ")\x04\xfa\x05obj.x\xda\x04meth\xdb\x02\x00\x00\x00\xe9\x01\x00\x00\x00\xda\x01a\xfb\xda\x01k\xe9\x02\x00\x00\x000"},
	{name: "basic/marshal/Connect/o_q", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "o'q", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x03o'q0"},
	{name: "basic/marshal/Invoke/o_q", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "o'q", method: "meth",
		payload: ")\x04\xfa\x03o'q\xda\x04meth\xdb\x02\x00\x00\x00\xe9\x01\x00\x00\x00\xda\x01a\xfb\xda\x01k\xe9\x02\x00\x00\x000"},
	{name: "basic/marshal/Connect/o_b__", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "o\\b\"'", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x05o\\b\"'0"},
	{name: "basic/marshal/Invoke/o_b__", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "o\\b\"'", method: "meth",
		payload: ")\x04\xfa\x05o\\b\"'\xda\x04meth\xdb\x02\x00\x00\x00\xe9\x01\x00\x00\x00\xda\x01a\xfb\xda\x01k\xe9\x02\x00\x00\x000"},
	{name: "basic/marshal/Connect/\u00fcn\u00ef__", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "\u00fcn\u00ef\u20ac\U0001f600", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xf5\x0c\x00\x00\x00\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x800"},
	{name: "basic/marshal/Invoke/\u00fcn\u00ef__", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "\u00fcn\u00ef\u20ac\U0001f600", method: "meth",
		payload: ")\x04\xf5\x0c\x00\x00\x00\xc3\xbcn\xc3\xaf\xe2\x82\xac\xf0\x9f\x98\x80\xda\x04meth\xdb\x02\x00\x00\x00\xe9\x01\x00\x00\x00\xda\x01a\xfb\xda\x01k\xe9\x02\x00\x00\x000"},
	{name: "basic/marshal/Connect/a____", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "a\u007f\u0001\u0378\U000e0001", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xf5\x09\x00\x00\x00a\x7f\x01\xcd\xb8\xf3\xa0\x80\x810"},
	{name: "basic/marshal/Invoke/a____", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "a\u007f\u0001\u0378\U000e0001", method: "meth",
		payload: ")\x04\xf5\x09\x00\x00\x00a\x7f\x01\xcd\xb8\xf3\xa0\x80\x81\xda\x04meth\xdb\x02\x00\x00\x00\xe9\x01\x00\x00\x00\xda\x01a\xfb\xda\x01k\xe9\x02\x00\x00\x000"},
	{name: "basic/marshal/Connect/same", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "same", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x04same0"},
	{name: "basic/marshal/Invoke/same", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "same", method: "meth",
		payload: ")\x04\xfa\x04same\xda\x04meth\xdb\x02\x00\x00\x00\xe9\x01\x00\x00\x00\xda\x01a\xfb\xda\x01k\xe9\x02\x00\x00\x000"},
	{name: "basic/marshal/Connect/xxxxxxxx", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xe1,\x01\x00\x00xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx0"},
	{name: "basic/marshal/Invoke/xxxxxxxx", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", method: "meth",
		payload: ")\x04\xe1,\x01\x00\x00xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\xda\x04meth\xdb\x02\x00\x00\x00\xe9\x01\x00\x00\x00\xda\x01a\xfb\xda\x01k\xe9\x02\x00\x00\x000"},
	{name: "bigarg/marshal/Connect", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x05obj.x0"},
	{name: "bigarg/marshal/Invoke", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: ")\x04\xfa\x05obj.x\xda\x04meth\xdb\x01\x00\x00\x00\xe1\x88\x13\x00\x00xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
	{name: "kwargs/marshal/Connect", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x05obj.x0"},
	{name: "kwargs/marshal/Invoke", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: ")\x04\xfa\x05obj.x\xda\x04meth\xdb\x00\x00\x00\x00\xfb\xda\x05alpha\xe9\x01\x00\x00\x00\xda\x04beta\xdb\x03\x00\x00\x00r\x05\x00\x00\x00\xe9\x02\x00\x00\x00{\xda\x01c\xda\x01d00"},
	{name: "samemeth/marshal/Connect", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "same", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x04same0"},
	{name: "samemeth/marshal/Invoke", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "same", method: "same",
		payload: ")\x04\xfa\x04same\xda\x04same\xdb\x00\x00\x00\x00\xfb0"},
	{name: "umeth/marshal/Connect", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x05obj.x0"},
	{name: "umeth/marshal/Invoke", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "obj.x", method: "m\u00e9th'\"\\",
		payload: ")\x04\xfa\x05obj.x\xf4\x08\x00\x00\x00m\xc3\xa9th'\"\\\xdb\x01\x00\x00\x00\xe9\x01\x00\x00\x00\xfb0"},
	{name: "batch/marshal/Connect", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x05obj.x0"},
	{name: "oneway/marshal/Connect", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x05obj.x0"},
	{name: "oneway/marshal/Invoke", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: ")\x04\xfa\x05obj.x\xda\x04meth\xdb\x01\x00\x00\x00\xe9\x03\x00\x00\x00\xfb0"},
	{name: "handshake/marshal/Connect", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "\xfb\xda\x09handshake\xfb\xda\x04user\xda\x03bob\xda\x06object\xda\x05decoy\xda\x01n[\x04\x00\x00\x00\xe9\x01\x00\x00\x00\xe7\x00\x00\x00\x00\x00\x00\x04@NT0r\x05\x00\x00\x00\xfa\x05obj.x0"},
	{name: "handshake/marshal/Invoke", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: ")\x04\xfa\x05obj.x\xda\x04meth\xdb\x00\x00\x00\x00\xfb0"},
	{name: "blob/marshal/Connect", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x05obj.x0"},
	{name: "blob/marshal/Invoke", typ: Invoke, ser: Marshal, flags: 64, ok: true, object: "obj.x", method: "meth",
		payload: ")\x04\xfa\x05obj.x\xda\x04meth\xdb\x02\x00\x00\x00\xda\x01a\xe9\x01\x00\x00\x00\xfb0"},
	{name: "blob2/marshal/Connect", typ: Connect, ser: Marshal, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello\xda\x06object\xfa\x05obj.x0"},
	{name: "blob2/marshal/Invoke", typ: Invoke, ser: Marshal, flags: 64, ok: true, object: "obj.x", method: "meth",
		payload: ")\x04\xfa\x05obj.x\xda\x04meth\xdb\x01\x00\x00\x00\xda\x01a\xfb0"},
	{name: "compressed/serpent/Connect", typ: Connect, ser: Serpent, flags: 16, ok: true, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello','object':'obj.x'}"},
	{name: "compressed/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 2, ok: false, object: "obj.x", method: "meth",
		payload: "x\x9cSV(N-*H\xcd+Q(-I\xd3\xb5P(\xa8,\xc9\xc8\xcf3\xd63\xe2\xd2P\xcfO\xca\xd2\xabP\xd7Q\xcfM-\xc9P\xd7\xd1P\xaf\x1c\x05\xa3`\x14\x8c\x82Q0\nF\xc1\x90\x07\xea:\x9a:\xd5\xb5\x9a\x00\xe2\x95\xc0\xb8"},
	{name: "pickle/pickle/Connect", typ: Connect, ser: Pickle, flags: 16, ok: false, object: "obj.x", method: "",
		payload: "\x80\x05\x95*\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x09handshake\x94\x8c\x05hello\x94\x8c\x06object\x94\x8c\x05obj.x\x94u."},
	{name: "pickle/pickle/Invoke", typ: Invoke, ser: Pickle, flags: 0, ok: false, object: "obj.x", method: "meth",
		payload: "\x80\x05\x95\x19\x00\x00\x00\x00\x00\x00\x00(\x8c\x05obj.x\x94\x8c\x04meth\x94K\x01\x85\x94}\x94t\x94."},
	{name: "nometa/json/Connect", typ: Connect, ser: JSON, flags: 0, ok: false, object: "obj.x", method: "",
		payload: "{\"handshake\": \"hello\"}"},
	{name: "nometa/json/Invoke", typ: Invoke, ser: JSON, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "{\"object\": \"obj.x\", \"method\": \"meth\", \"params\": [1], \"kwargs\": {}}"},
	{name: "nometa/serpent/Connect", typ: Connect, ser: Serpent, flags: 0, ok: false, object: "obj.x", method: "",
		payload: "# serpent utf-8 python3.2\n{'handshake':'hello'}"},
	{name: "nometa/serpent/Invoke", typ: Invoke, ser: Serpent, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: "# serpent utf-8 python3.2\n('obj.x','meth',(1,),{})"},
	{name: "nometa/marshal/Connect", typ: Connect, ser: Marshal, flags: 0, ok: false, object: "obj.x", method: "",
		payload: "\xfb\xda\x09handshake\xda\x05hello0"},
	{name: "nometa/marshal/Invoke", typ: Invoke, ser: Marshal, flags: 0, ok: true, object: "obj.x", method: "meth",
		payload: ")\x04\xfa\x05obj.x\xda\x04meth\xdb\x01\x00\x00\x00\xe9\x01\x00\x00\x00\xfb0"},
}

// More payloads made with Python 3.11 serpent, json and marshal directly: serpent with
// indent, json with ensure_ascii, other key orders and separators, every marshal version.
var extraVectors = []wireVector{
	{name: "serpent/indent", typ: Invoke, ser: Serpent, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "m\u0378\u0009",
		payload: "# serpent utf-8 python3.2\n(\n  'ob\\'j\"\\\\\xc3\xbc\xf0\x9f\x98\x80\\x01',\n  'm\\u0378\\t',\n  (\n    1,\n    'a',\n    {\n      'k': [\n        1,\n        2\n      ]\n    }\n  ),\n  {\n    'kw': 'v'\n  }\n)"},
	{name: "serpent/indent", typ: Connect, ser: Serpent, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "",
		payload: "# serpent utf-8 python3.2\n{\n  'handshake': {\n    'a': [\n      1,\n      (\n        2,\n        3\n      )\n    ],\n    'object': 'decoy'\n  },\n  'object': 'ob\\'j\"\\\\\xc3\xbc\xf0\x9f\x98\x80\\x01'\n}"},
	{name: "json/ensure_ascii", typ: Invoke, ser: JSON, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "m\u0378\u0009",
		payload: "{\"object\": \"ob'j\\\"\\\\\\u00fc\\ud83d\\ude00\\u0001\", \"method\": \"m\\u0378\\t\", \"params\": [1, \"a\", {\"k\": [1, 2]}], \"kwargs\": {\"kw\": \"v\"}}"},
	{name: "json/compact-reordered", typ: Invoke, ser: JSON, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "m\u0378\u0009",
		payload: "{\"params\":[1,\"}\",{\"method\":\"decoy\"}],\"kwargs\":{\"object\":\"decoy\"},\"method\":\"m\xcd\xb8\\t\",\"object\":\"ob'j\\\"\\\\\xc3\xbc\xf0\x9f\x98\x80\\u0001\"}"},
	{name: "json/indent", typ: Connect, ser: JSON, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "",
		payload: "{\n  \"handshake\": [\n    \"object\",\n    {\n      \"object\": 1\n    }\n  ],\n  \"object\": \"ob'j\\\"\\\\\\u00fc\\ud83d\\ude00\\u0001\"\n}"},
	{name: "marshal/version0", typ: Invoke, ser: Marshal, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "m\u0378\u0009",
		payload: "(\x04\x00\x00\x00u\x0d\x00\x00\x00ob'j\"\\\xc3\xbc\xf0\x9f\x98\x80\x01u\x04\x00\x00\x00m\xcd\xb8\x09(\x03\x00\x00\x00i\x01\x00\x00\x00u\x01\x00\x00\x00a{u\x01\x00\x00\x00k[\x02\x00\x00\x00i\x01\x00\x00\x00i\x02\x00\x00\x000{u\x02\x00\x00\x00kwu\x01\x00\x00\x00v0"},
	{name: "marshal/version0", typ: Connect, ser: Marshal, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "",
		payload: "{u\x09\x00\x00\x00handshakef\x031.5u\x06\x00\x00\x00objectu\x0d\x00\x00\x00ob'j\"\\\xc3\xbc\xf0\x9f\x98\x80\x010"},
	{name: "marshal/version1", typ: Invoke, ser: Marshal, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "m\u0378\u0009",
		payload: "(\x04\x00\x00\x00u\x0d\x00\x00\x00ob'j\"\\\xc3\xbc\xf0\x9f\x98\x80\x01u\x04\x00\x00\x00m\xcd\xb8\x09(\x03\x00\x00\x00i\x01\x00\x00\x00u\x01\x00\x00\x00a{u\x01\x00\x00\x00k[\x02\x00\x00\x00i\x01\x00\x00\x00i\x02\x00\x00\x000{u\x02\x00\x00\x00kwu\x01\x00\x00\x00v0"},
	{name: "marshal/version1", typ: Connect, ser: Marshal, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "",
		payload: "{u\x09\x00\x00\x00handshakef\x031.5u\x06\x00\x00\x00objectu\x0d\x00\x00\x00ob'j\"\\\xc3\xbc\xf0\x9f\x98\x80\x010"},
	{name: "marshal/version2", typ: Invoke, ser: Marshal, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "m\u0378\u0009",
		payload: "(\x04\x00\x00\x00u\x0d\x00\x00\x00ob'j\"\\\xc3\xbc\xf0\x9f\x98\x80\x01u\x04\x00\x00\x00m\xcd\xb8\x09(\x03\x00\x00\x00i\x01\x00\x00\x00u\x01\x00\x00\x00a{u\x01\x00\x00\x00k[\x02\x00\x00\x00i\x01\x00\x00\x00i\x02\x00\x00\x000{u\x02\x00\x00\x00kwu\x01\x00\x00\x00v0"},
	{name: "marshal/version2", typ: Connect, ser: Marshal, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "",
		payload: "{u\x09\x00\x00\x00handshakeg\x00\x00\x00\x00\x00\x00\xf8?u\x06\x00\x00\x00objectu\x0d\x00\x00\x00ob'j\"\\\xc3\xbc\xf0\x9f\x98\x80\x010"},
	{name: "marshal/version3", typ: Invoke, ser: Marshal, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "m\u0378\u0009",
		payload: "\xa8\x04\x00\x00\x00\xf5\x0d\x00\x00\x00ob'j\"\\\xc3\xbc\xf0\x9f\x98\x80\x01\xf5\x04\x00\x00\x00m\xcd\xb8\x09(\x03\x00\x00\x00\xe9\x01\x00\x00\x00\xf4\x01\x00\x00\x00a{\xf4\x01\x00\x00\x00k[\x02\x00\x00\x00r\x03\x00\x00\x00\xe9\x02\x00\x00\x000{\xf4\x02\x00\x00\x00kw\xf4\x01\x00\x00\x00v0"},
	{name: "marshal/version3", typ: Connect, ser: Marshal, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "",
		payload: "{\xf4\x09\x00\x00\x00handshake\xe7\x00\x00\x00\x00\x00\x00\xf8?\xf4\x06\x00\x00\x00object\xf5\x0d\x00\x00\x00ob'j\"\\\xc3\xbc\xf0\x9f\x98\x80\x010"},
	{name: "marshal/version4", typ: Invoke, ser: Marshal, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "m\u0378\u0009",
		payload: "\xa9\x04\xf5\x0d\x00\x00\x00ob'j\"\\\xc3\xbc\xf0\x9f\x98\x80\x01\xf5\x04\x00\x00\x00m\xcd\xb8\x09)\x03\xe9\x01\x00\x00\x00\xda\x01a{\xda\x01k[\x02\x00\x00\x00r\x03\x00\x00\x00\xe9\x02\x00\x00\x000{\xda\x02kw\xda\x01v0"},
	{name: "marshal/version4", typ: Connect, ser: Marshal, ok: true, object: "ob'j\"\\\u00fc\U0001f600\u0001", method: "",
		payload: "{\xda\x09handshake\xe7\x00\x00\x00\x00\x00\x00\xf8?\xda\x06object\xf5\x0d\x00\x00\x00ob'j\"\\\xc3\xbc\xf0\x9f\x98\x80\x010"},
	{name: "marshal/ref-method", typ: Invoke, ser: Marshal, ok: true, object: "same", method: "same",
		payload: ")\x04\xda\x04samer\x00\x00\x00\x00[\x00\x00\x00\x00{0"},
	{name: "marshal/skip-all-types", typ: Connect, ser: Marshal, ok: true, object: "obj.y", method: "",
		payload: "{\xda\x09handshake\xfb\xda\x06object\xfa\x05obj.y\xda\x01x)\x08<\x02\x00\x00\x00\xe9\x01\x00\x00\x00\xe9\x02\x00\x00\x00>\x01\x00\x00\x00\xda\x01a\xf9\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0?l\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\xf3\x01\x00\x00\x00b.\xe7\x00\x00\x00\x00\x00\x00\x0c\xc0N0r\x02\x00\x00\x00r\x03\x00\x00\x000"},
}

func peek(typ MsgType, s Serializer, flags Flags, p []byte) (string, string, error) {
	if typ == Connect {
		o, err := PeekConnectObject(s, flags, p)
		return o, "", err
	}
	return PeekInvoke(s, flags, p)
}

func allVectors() []wireVector {
	return append(append([]wireVector{}, wireVectors...), extraVectors...)
}

func TestPeekRealPayloads(t *testing.T) {
	for _, v := range allVectors() {
		t.Run(v.name, func(t *testing.T) {
			obj, meth, err := peek(v.typ, v.ser, v.flags, []byte(v.payload))
			if !v.ok {
				if !errors.Is(err, ErrCannotPeek) {
					t.Fatalf("got %q, %q, %v; want ErrCannotPeek", obj, meth, err)
				}
				t.Logf("%v", err)
				return
			}
			if err != nil || obj != v.object || meth != v.method {
				t.Fatalf("got %q, %q, %v; want %q, %q", obj, meth, err, v.object, v.method)
			}
		})
	}
}

// A peek of any prefix of a payload either gives the same answer as the whole payload or
// ErrCannotPeek: a short prefix never yields a wrong name.
func TestPeekPrefixes(t *testing.T) {
	for _, v := range allVectors() {
		if !v.ok {
			continue
		}
		p := []byte(v.payload)
		for n := range min(len(p), PeekLimit+2) {
			obj, meth, err := peek(v.typ, v.ser, v.flags, p[:n])
			if err != nil {
				if !errors.Is(err, ErrCannotPeek) {
					t.Fatalf("%s[:%d]: error %v does not wrap ErrCannotPeek", v.name, n, err)
				}
				continue
			}
			if obj != v.object || meth != v.method {
				t.Fatalf("%s[:%d]: got %q, %q; want %q, %q", v.name, n, obj, meth, v.object, v.method)
			}
		}
	}
}

// refusalCases are peeks of refusalCall that must be refused, with a word of the reason.
var refusalCases = []struct {
	name   string
	ser    Serializer
	flags  Flags
	reason string
}{
	{"compressed", Serpent, FlagCompressed | FlagOneway, "compressed"},
	{"pickle", Pickle, 0, "pickle"},
	{"dill", Dill, 0, "dill"},
	{"cloudpickle", Cloudpickle, 0, "cloudpickle"},
	{"msgpack", Msgpack, 0, "msgpack"},
	{"unknown", 99, 0, "serializer(99)"},
	{"zero", 0, 0, "serializer(0)"},
}

var refusalCall = []byte("# serpent utf-8 python3.2\n('obj.x','meth',(),{})")

func TestPeekRefusals(t *testing.T) {
	for _, tc := range refusalCases {
		for _, typ := range []MsgType{Connect, Invoke} {
			_, _, err := peek(typ, tc.ser, tc.flags, refusalCall)
			if !errors.Is(err, ErrCannotPeek) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("%s %v: got %v, want ErrCannotPeek mentioning %q", tc.name, typ, err, tc.reason)
			}
		}
	}
}

// limitCase builds INVOKE payloads whose object id is n bytes of "y" and method "m".
type limitCase struct {
	ser        Serializer
	head       func(n int) string
	need, tail string // need: what must follow the object id within the window
}

// fits is the longest object id whose call fits in the window.
func (tc *limitCase) fits() int { return PeekLimit - len(tc.head(0)) - len(tc.need) }

// payload is the call with an object id of n bytes.
func (tc *limitCase) payload(n int) []byte {
	return []byte(tc.head(n) + strings.Repeat("y", n) + tc.need + tc.tail)
}

var limitCases = []limitCase{
	{Serpent, func(int) string { return "# serpent utf-8 python3.2\n('" }, "','m'", ",(),{})"},
	{JSON, func(int) string { return `{"object": "` }, `", "method": "m"`, `, "params": [], "kwargs": {}}`},
	{Marshal, func(n int) string { return ")\x04u" + string([]byte{byte(n), byte(n >> 8), 0, 0}) }, "z\x01m", "[\x00\x00\x00\x00{0"},
}

func TestPeekLimit(t *testing.T) {
	for _, tc := range limitCases {
		fits := tc.fits()
		for _, n := range []int{fits, fits + 1, 5000} {
			name := strings.Repeat("y", n)
			p := tc.payload(n)
			obj, meth, err := PeekInvoke(tc.ser, 0, p)
			if n == fits {
				if err != nil || obj != name || meth != "m" {
					t.Errorf("%v, object of %d bytes: got %.10q, %q, %v", tc.ser, n, obj, meth, err)
				}
				continue
			}
			if !errors.Is(err, ErrCannotPeek) || !strings.Contains(err.Error(), "too short") {
				t.Errorf("%v, object of %d bytes: got %.10q, %q, %v; want a too-short ErrCannotPeek", tc.ser, n, obj, meth, err)
			} else if n == 5000 && !strings.Contains(err.Error(), "first 1024 bytes") {
				t.Errorf("%v: error %q does not mention the limit", tc.ser, err)
			}
		}
	}
}

// serpentLiteralCases are serpent INVOKE payloads after the header line.
var serpentLiteralCases = []struct {
	in       string
	obj, met string // obj == "" means ErrCannotPeek
}{
	{`('a','b',(),{})`, "a", "b"},
	{`("it's",'say "hi"',(),{})`, "it's", `say "hi"`},
	{`('\'\"\\','\a\b\f\n\r\t\v',(),{})`, `'"\`, "\a\b\f\n\r\t\v"},
	{`('\x41\u00e9\U0001F600','\101\0\7\777',(),{})`, "Aé😀", "A\x00\x07ǿ"},
	{`('\q\d','a\` + "\n" + `b',(),{})`, `\q\d`, "ab"},
	{`(u'a',U"b",(),{})`, "a", "b"},
	{` ( 'a' , 'b' , ( ) , { } ) `, "a", "b"},
	{"('a',\n'b',\n(),{})", "a", "b"},
	{"('a','b')", "", ""}, // not a call
	{"#c1\n# c2\n('a', # c3\n'b',)", "a", "b"},
	{"('a','b'", "a", "b"},          // prefix ends after the method
	{`('a' 'b','c',(),{})`, "", ""}, // implicit concatenation
	{`('''a''','b',(),{})`, "", ""}, // triple quotes
	{`(r'a','b',(),{})`, "", ""},    // raw literal
	{`(b'a','b',(),{})`, "", ""},    // bytes
	{`(f'a','b',(),{})`, "", ""},    // f-string
	{`(('a'),'b',(),{})`, "", ""},   // parenthesized
	{`('\N{DIGIT ONE}','b',(),{})`, "", ""},
	{`('\ud83d\ude00','b',(),{})`, "", ""}, // surrogates stay lone in a Python str
	{`('\x4','b',(),{})`, "", ""},
	{`('\U00110000','b',(),{})`, "", ""},
	{"('a\nb','c',(),{})", "", ""},
	{`(1,'b',(),{})`, "", ""},
	{`('a',2,(),{})`, "", ""},
	{`('a','b' 3)`, "", ""},
	{`['a','b',(),{}]`, "", ""},
	{`{'object':'a','method':'b'}`, "", ""},
	{"('\xff','b',(),{})", "", ""}, // not UTF-8
	{`('a`, "", ""},
	{``, "", ""},
}

func TestPeekSerpentLiterals(t *testing.T) {
	const h = "# serpent utf-8 python3.2\n"
	for _, tc := range serpentLiteralCases {
		obj, met, err := PeekInvoke(Serpent, 0, []byte(h+tc.in))
		if tc.obj == "" {
			if !errors.Is(err, ErrCannotPeek) {
				t.Errorf("%s: got %q, %q, %v; want ErrCannotPeek", tc.in, obj, met, err)
			}
			continue
		}
		if err != nil || obj != tc.obj || met != tc.met {
			t.Errorf("%s: got %q, %q, %v; want %q, %q", tc.in, obj, met, err, tc.obj, tc.met)
		}
	}
}

// connectDictCases are CONNECT payloads.
var connectDictCases = []struct {
	ser  Serializer
	in   string
	want string // "" means ErrCannotPeek
}{
	{Serpent, `{'handshake':'hello','object':'obj.x'}`, "obj.x"},
	{Serpent, `{'object':'obj.x','handshake':'hello'}`, "obj.x"},
	{Serpent, `{'handshake':('}', "'", {'object': 'no'}, [1,2]),'object':'obj.x',}`, "obj.x"},
	{Serpent, `{1:'a',True:None,(1,2):3,'obj\x65ct':'obj.x'}`, "obj.x"},
	{Serpent, `{'handshake':{'__class__':'float','value':'nan'},'object':'obj.x'}`, "obj.x"},
	{Serpent, `{'handshake':-1e30000,'object':'obj.x'}`, "obj.x"},
	{Serpent, "{'handshake':'''x','object':'evil''','object':'obj.x'}", ""},
	{Serpent, `{'handshake':'hello'}`, ""},
	{Serpent, `{'handshake':'hello','object':'a','object':'b'}`, ""},
	{Serpent, `{'handshake':'hello','object':'a','obj\x65ct':'b'}`, ""},
	{Serpent, `{'handshake':'hello','object':5}`, ""},
	{Serpent, `{'handshake':'hello' 'object':'a'}`, ""},
	{Serpent, `{'handshake':,'object':'a'}`, ""},
	{Serpent, `('hello','obj.x')`, ""},
	{JSON, `{"handshake": "hello", "object": "obj.x"}`, "obj.x"},
	{JSON, ` {"object":"obj.x","handshake":{"a":["}",{"object":"no"}]}} `, "obj.x"},
	{JSON, `{"handshake": "h", "\u006fbject": "\u006f\ud83d\ude00"}`, "o😀"},
	{JSON, `{"handshake": "hello"}`, ""},
	{JSON, `{"object": "a", "object": "b"}`, ""},
	{JSON, `{"object": "a", "\u006fbject": "b"}`, ""},
	{JSON, `{"object": "a",}`, ""},
	{JSON, `{'object': 'a'}`, ""},
	{JSON, `{"object": null}`, ""},
	{JSON, `{"object": "\ud800"}`, ""},
	{JSON, `{"object": "\ud800\u0041"}`, ""},
	{JSON, `{"object": "\udc00"}`, ""},
	{JSON, `{"object": "\x"}`, ""},
	{JSON, "{\"object\": \"a\tb\"}", ""},
	{JSON, "\ufeff{\"object\": \"a\"}", ""},
	{Marshal, "{z\x06objectz\x01a0", "a"},
	{Marshal, "\xfb\xda\x06object\xda\x01a\xda\x09handshaker\x01\x00\x00\x000", "a"},
	{Marshal, "{z\x06objectz\x01az\x06objectz\x01b0", ""},
	{Marshal, "{z\x06objecti\x01\x00\x00\x000", ""},
	{Marshal, "{z\x06object00", ""},              // key without value ends the dict
	{Marshal, "{z\x09handshake\xe3\x00\x00", ""}, // code object
	{Marshal, "{z\x09handshaker\x07\x00\x00\x00z\x06objectz\x01a0", ""},
	{Marshal, ")\x02z\x06objectz\x01a", ""},
	{Marshal, "{z\x09handshakeN0", ""},
}

func TestPeekConnectDicts(t *testing.T) {
	for _, tc := range connectDictCases {
		got, err := PeekConnectObject(tc.ser, FlagMetaOnConnect, []byte(tc.in))
		if tc.want == "" {
			if !errors.Is(err, ErrCannotPeek) {
				t.Errorf("%v %q: got %q, %v; want ErrCannotPeek", tc.ser, tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v %q: got %q, %v; want %q", tc.ser, tc.in, got, err, tc.want)
		}
	}
}

// jsonMarshalInvokeCases are json and marshal INVOKE payloads.
var jsonMarshalInvokeCases = []struct {
	ser      Serializer
	in       string
	obj, met string // obj == "" means ErrCannotPeek
}{
	{JSON, `{"method":"m","object":"o"}`, "o", "m"},
	{JSON, `{"params":[{"object":"no"}],"kwargs":{"method":"no"},"method":"m","object":"o"}`, "o", "m"},
	{JSON, `{"object":"o\/\b\f\n\r\t\"\\","method":"\u00e9\uD83D\uDE00"}`, "o/\b\f\n\r\t\"\\", "é😀"},
	{JSON, `{"object":"o","method":"m","params":["x`, "o", "m"}, // the rest is past the prefix
	{JSON, `{"object":"o","params":["x`, "", ""},
	{JSON, `{"object":"o","method":"m","method":"n"}`, "", ""},
	{JSON, `{"object":"o","method":1}`, "", ""},
	{JSON, `{"object":"o"}`, "", ""},
	{JSON, `["o","m",[],{}]`, "", ""},
	{Marshal, ")\x04z\x01oz\x01m", "o", "m"},
	{Marshal, "(\x04\x00\x00\x00u\x01\x00\x00\x00oa\x01\x00\x00\x00\xe9", "o", "é"},
	{Marshal, "\xa9\x04\xda\x01or\x01\x00\x00\x00", "o", "o"},
	{Marshal, ")\x04\xda\x01or\x00\x00\x00\x00", "o", "o"},
	{Marshal, "\xa9\x04\xda\x01or\x00\x00\x00\x00", "", ""}, // refers to the tuple
	{Marshal, ")\x03z\x01oz\x01mN", "", ""},
	{Marshal, ")\x04s\x01\x00\x00\x00oz\x01m", "", ""},
	{Marshal, ")\x04z\x01o", "", ""},
	{Marshal, "[\x04\x00\x00\x00z\x01oz\x01m", "", ""},
	{Marshal, ")\x04u\x01\x00\x00\x00\xffz\x01m", "", ""},
	{Marshal, "", "", ""},
}

func TestPeekInvokeJSONAndMarshal(t *testing.T) {
	for _, tc := range jsonMarshalInvokeCases {
		obj, met, err := PeekInvoke(tc.ser, 0, []byte(tc.in))
		if tc.obj == "" {
			if !errors.Is(err, ErrCannotPeek) {
				t.Errorf("%v %q: got %q, %q, %v; want ErrCannotPeek", tc.ser, tc.in, obj, met, err)
			}
			continue
		}
		if err != nil || obj != tc.obj || met != tc.met {
			t.Errorf("%v %q: got %q, %q, %v; want %q, %q", tc.ser, tc.in, obj, met, err, tc.obj, tc.met)
		}
	}
}

var marshalCauseCall = []byte(")\x04?z\x01oz\x01m")

// A marshal error behind ErrCannotPeek is reachable with errors.As.
func TestPeekMarshalCause(t *testing.T) {
	_, _, err := PeekInvoke(Marshal, 0, marshalCauseCall)
	var me *MarshalError
	if !errors.Is(err, ErrCannotPeek) || !errors.As(err, &me) {
		t.Fatalf("got %v, want ErrCannotPeek wrapping a *MarshalError", err)
	}
}

func TestPeekAllocations(t *testing.T) {
	for _, v := range allVectors() {
		if !v.ok {
			continue
		}
		p := []byte(v.payload)
		allocs := testing.AllocsPerRun(20, func() { _, _, _ = peek(v.typ, v.ser, v.flags, p) })
		want := 2.0 // the result strings
		if v.typ == Connect {
			want = 1
		}
		if allocs > want {
			t.Errorf("%s: %v allocations, want at most %v", v.name, allocs, want)
		}
	}
	for _, s := range []Serializer{Pickle, Serpent} {
		allocs := testing.AllocsPerRun(20, func() { _, _, _ = PeekInvoke(s, FlagCompressed, nil) })
		if allocs != 0 {
			t.Errorf("refusing %v: %v allocations", s, allocs)
		}
	}
}

func fuzzSeeds(f *testing.F, typ MsgType) {
	for _, v := range allVectors() {
		if v.typ == typ {
			f.Add(uint16(v.ser), uint16(v.flags), []byte(v.payload))
		}
	}
}

func checkPeek(t *testing.T, typ MsgType, ser, flags uint16, p []byte) {
	in := bytes.Clone(p)
	obj, meth, err := peek(typ, Serializer(ser), Flags(flags), p)
	checkAppendPeek(t, typ, Serializer(ser), Flags(flags), p, obj, meth, err)
	if !bytes.Equal(in, p) {
		t.Fatal("the peek modified the payload")
	}
	if err != nil {
		if !errors.Is(err, ErrCannotPeek) {
			t.Fatalf("error %v does not wrap ErrCannotPeek", err)
		}
		if obj != "" || meth != "" {
			t.Fatalf("error %v with results %q, %q", err, obj, meth)
		}
		return
	}
	if !utf8.ValidString(obj) || !utf8.ValidString(meth) {
		t.Fatalf("results %q, %q are not valid UTF-8", obj, meth)
	}
	// Only the window counts: the same call on the window gives the same answer.
	o2, m2, err2 := peek(typ, Serializer(ser), Flags(flags), p[:min(len(p), PeekLimit)])
	if err2 != nil || o2 != obj || m2 != meth {
		t.Fatalf("window gives %q, %q, %v; whole payload %q, %q", o2, m2, err2, obj, meth)
	}
	if Flags(flags)&FlagCompressed != 0 {
		t.Fatalf("peeked a compressed payload")
	}
}

func FuzzPeekInvoke(f *testing.F) {
	fuzzSeeds(f, Invoke)
	f.Fuzz(func(t *testing.T, ser, flags uint16, p []byte) { checkPeek(t, Invoke, ser, flags, p) })
}

func FuzzPeekConnectObject(f *testing.F) {
	fuzzSeeds(f, Connect)
	f.Fuzz(func(t *testing.T, ser, flags uint16, p []byte) { checkPeek(t, Connect, ser, flags, p) })
}

// benchVector returns the wire vector called name.
func benchVector(b *testing.B, name string) wireVector {
	for _, w := range wireVectors {
		if w.name == name {
			return w
		}
	}
	b.Fatalf("no vector %q", name)
	return wireVector{}
}

func benchmarkPeekInvoke(b *testing.B, name string) {
	v := benchVector(b, name)
	p := []byte(v.payload)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := PeekInvoke(v.ser, v.flags, p); err != nil {
			b.Fatal(err)
		}
	}
}

// The benchmarks peek a call with a 5000-byte argument, so the whole window is in play.
func BenchmarkPeekInvokeSerpent(b *testing.B) { benchmarkPeekInvoke(b, "bigarg/serpent/Invoke") }
func BenchmarkPeekInvokeJSON(b *testing.B)    { benchmarkPeekInvoke(b, "bigarg/json/Invoke") }
func BenchmarkPeekInvokeMarshal(b *testing.B) { benchmarkPeekInvoke(b, "bigarg/marshal/Invoke") }

func benchAppendPeek(b *testing.B, name string) {
	v := benchVector(b, name)
	p := []byte(v.payload)
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, _, err = AppendPeekInvoke(dst[:0], v.ser, v.flags, p); err != nil {
			b.Fatal(err)
		}
	}
}

// The Append forms on the same calls, into a buffer that is reused: no allocation.
func BenchmarkAppendPeekInvokeSerpent(b *testing.B) { benchAppendPeek(b, "bigarg/serpent/Invoke") }
func BenchmarkAppendPeekInvokeJSON(b *testing.B)    { benchAppendPeek(b, "bigarg/json/Invoke") }
func BenchmarkAppendPeekInvokeMarshal(b *testing.B) { benchAppendPeek(b, "bigarg/marshal/Invoke") }
