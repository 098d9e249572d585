"""LangChain's ChatOpenAI (Chat Completions and the Responses API) and ChatAnthropic
(the Messages API) pointed at the gateway: plain answers, streaming, tool calls and
structured output, through the same session gateway as every other test."""

from __future__ import annotations

import json

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessageChunk, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from tests.conftest import LOCAL


class Weather(BaseModel):
    """Weather for a city."""

    city: str = Field(description="the city")


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str
    age: int


def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


def _openai(gateway, model: str = "gpt-fake", **kw: object) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=gateway.v1, api_key="unused", max_retries=0,
                      **kw)


def _anthropic(gateway, model: str = "gpt-fake") -> ChatAnthropic:
    return ChatAnthropic(model=model, base_url=gateway.url, api_key="unused", max_retries=0,
                         max_tokens=64)


@pytest.fixture(params=["chat", "responses"])
def chat_openai(request, gateway) -> ChatOpenAI:
    return _openai(gateway, use_responses_api=request.param == "responses")


def test_chat_openai_invokes_and_streams(chat_openai):
    msg = chat_openai.invoke("hello there")
    assert msg.content and "hello there" in msg.text
    assert msg.usage_metadata["input_tokens"] > 0
    chunks = list(chat_openai.stream("stream me"))
    assert len(chunks) > 1 and all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "stream me" in "".join(c.text for c in chunks)


def test_chat_openai_tool_calls_round_trip(chat_openai, fake_openai):
    fake_openai.tool_arguments = json.dumps({"city": "Paris"})
    llm = chat_openai.bind_tools([get_weather], tool_choice="get_weather")
    first = llm.invoke([HumanMessage("weather in Paris?")])
    call = first.tool_calls[0]
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"}
    # streamed: the argument deltas assemble into the same call
    merged = None
    for c in llm.stream("weather in Paris?"):
        merged = c if merged is None else merged + c
    assert merged.tool_calls[0]["args"] == {"city": "Paris"}
    # the tool's result goes back and the model answers in text
    answer = chat_openai.bind_tools([get_weather]).invoke([
        HumanMessage("weather in Paris?"), first,
        ToolMessage(get_weather("Paris"), tool_call_id=call["id"])])
    assert answer.text and not answer.tool_calls


def test_chat_openai_structured_output_with_a_json_schema(gateway):
    # the local model, constrained by the schema's grammar: a real parse, not an echo
    llm = _openai(gateway, LOCAL, temperature=0, max_tokens=60)
    person = llm.with_structured_output(Person, method="json_schema", strict=True).invoke(
        "Alice is 30 years old. Extract the person.")
    assert isinstance(person, Person) and isinstance(person.age, int)


def test_chat_openai_structured_output_by_function_calling(gateway, fake_openai):
    fake_openai.tool_arguments = json.dumps({"name": "Bob", "age": 41})
    person = _openai(gateway).with_structured_output(Person, method="function_calling") \
        .invoke("Bob is 41.")
    assert person == Person(name="Bob", age=41)


def test_chat_anthropic_invokes_and_streams(gateway):
    llm = _anthropic(gateway)
    msg = llm.invoke("hello there")
    assert "hello there" in msg.text and msg.usage_metadata["output_tokens"] > 0
    chunks = list(llm.stream("stream me"))
    assert len(chunks) > 1
    assert "stream me" in "".join(c.text for c in chunks)


def test_chat_anthropic_tools_and_structured_output(gateway, fake_openai):
    fake_openai.tool_arguments = json.dumps({"city": "Oslo"})
    llm = _anthropic(gateway).bind_tools([Weather], tool_choice="Weather")
    msg = llm.invoke("weather in Oslo?")
    assert msg.tool_calls[0]["name"] == "Weather"
    assert msg.tool_calls[0]["args"] == {"city": "Oslo"}
    merged = None
    for c in llm.stream("weather in Oslo?"):
        merged = c if merged is None else merged + c
    assert merged.tool_calls[0]["args"] == {"city": "Oslo"}
    fake_openai.tool_arguments = json.dumps({"name": "Eve", "age": 25})
    person = _anthropic(gateway).with_structured_output(Person).invoke("Eve is 25.")
    assert person == Person(name="Eve", age=25)


def test_chat_anthropic_on_the_local_model(gateway):
    msg = _anthropic(gateway, LOCAL).invoke("Say hi.")
    assert msg.text and msg.response_metadata["stop_reason"] in ("end_turn", "max_tokens")
