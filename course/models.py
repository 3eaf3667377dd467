"""The Chinook music store as SQLAlchemy 2 ORM models, shared by lessons 07-11.

The tables, keys and types are those of datasets/chinook/README.md, so the same classes work on
the course's SQLite copy and on its PostgreSQL database:

    from course.models import Album, Artist, Base, Track
    from sqlalchemy import select

    async with sessionmaker() as session:
        album = await session.get(Album, 1)
        tracks = (await session.scalars(select(Track).where(Track.album_id == 1))).all()

Relationships are typed and loaded explicitly (selectinload, joinedload or awaitable_attrs):
lesson 08 shows why lazy loading does not work under asyncio.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Column, DateTime, ForeignKey, Numeric, Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Money is exact: numeric(10, 2) on both databases, Decimal in Python.
Money = Numeric(10, 2)

# Chinook's SQLite copy stores dates as ISO 8601 text with a "T" ("2021-01-01T00:00:00");
# SQLAlchemy's SQLite DATETIME reads and writes that form when told to.
Timestamp = DateTime().with_variant(
    sqlite.DATETIME(storage_format="%(year)04d-%(month)02d-%(day)02dT%(hour)02d:%(minute)02d:%(second)02d",
                    regexp=r"(\d+)-(\d+)-(\d+)[T ](\d+):(\d+):(\d+)"),
    "sqlite",
)


class Base(AsyncAttrs, DeclarativeBase):
    """The base of every Chinook model. AsyncAttrs adds `await obj.awaitable_attrs.name`."""


class Genre(Base):
    __tablename__ = "genre"

    genre_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None]

    def __repr__(self) -> str:
        return f"Genre({self.genre_id}, {self.name!r})"


class MediaType(Base):
    __tablename__ = "media_type"

    media_type_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None]

    def __repr__(self) -> str:
        return f"MediaType({self.media_type_id}, {self.name!r})"


class Artist(Base):
    __tablename__ = "artist"

    artist_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None]

    # back_populates names the attribute on the other class that is the same link seen from the other
    # end (Album.artist): set one side in Python and SQLAlchemy fills the other.
    albums: Mapped[list[Album]] = relationship(back_populates="artist", order_by="Album.album_id")

    def __repr__(self) -> str:
        return f"Artist({self.artist_id}, {self.name!r})"


class Album(Base):
    __tablename__ = "album"

    album_id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str]
    artist_id: Mapped[int] = mapped_column(ForeignKey("artist.artist_id"), index=True)

    artist: Mapped[Artist] = relationship(back_populates="albums")
    tracks: Mapped[list[Track]] = relationship(back_populates="album", order_by="Track.track_id")

    def __repr__(self) -> str:
        return f"Album({self.album_id}, {self.title!r})"


# The link table of a many-to-many relationship: pairs of keys, no class of its own. Track.playlists
# and Playlist.tracks name it with secondary=, and SQLAlchemy joins through it for them.
playlist_track = Table(
    "playlist_track",
    Base.metadata,
    Column("playlist_id", ForeignKey("playlist.playlist_id"), primary_key=True),
    Column("track_id", ForeignKey("track.track_id"), primary_key=True),
)


class Track(Base):
    __tablename__ = "track"

    track_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    album_id: Mapped[int | None] = mapped_column(ForeignKey("album.album_id"), index=True)
    media_type_id: Mapped[int] = mapped_column(ForeignKey("media_type.media_type_id"), index=True)
    genre_id: Mapped[int | None] = mapped_column(ForeignKey("genre.genre_id"), index=True)
    composer: Mapped[str | None]
    milliseconds: Mapped[int]
    bytes: Mapped[int | None]
    unit_price: Mapped[Decimal] = mapped_column(Money)

    album: Mapped[Album | None] = relationship(back_populates="tracks")
    genre: Mapped[Genre | None] = relationship()
    media_type: Mapped[MediaType] = relationship()
    playlists: Mapped[list[Playlist]] = relationship(secondary=playlist_track, back_populates="tracks")

    def __repr__(self) -> str:
        return f"Track({self.track_id}, {self.name!r})"


class Employee(Base):
    __tablename__ = "employee"

    employee_id: Mapped[int] = mapped_column(primary_key=True)
    last_name: Mapped[str]
    first_name: Mapped[str]
    title: Mapped[str | None]
    reports_to: Mapped[int | None] = mapped_column(ForeignKey("employee.employee_id"), index=True)
    birth_date: Mapped[datetime | None] = mapped_column(Timestamp)
    hire_date: Mapped[datetime | None] = mapped_column(Timestamp)
    address: Mapped[str | None]
    city: Mapped[str | None]
    state: Mapped[str | None]
    country: Mapped[str | None]
    postal_code: Mapped[str | None]
    phone: Mapped[str | None]
    fax: Mapped[str | None]
    email: Mapped[str | None]

    manager: Mapped[Employee | None] = relationship(remote_side=[employee_id])

    def __repr__(self) -> str:
        return f"Employee({self.employee_id}, {self.first_name!r} {self.last_name!r})"


class Customer(Base):
    __tablename__ = "customer"

    customer_id: Mapped[int] = mapped_column(primary_key=True)
    first_name: Mapped[str]
    last_name: Mapped[str]
    company: Mapped[str | None]
    address: Mapped[str | None]
    city: Mapped[str | None]
    state: Mapped[str | None]
    country: Mapped[str | None]
    postal_code: Mapped[str | None]
    phone: Mapped[str | None]
    fax: Mapped[str | None]
    email: Mapped[str]
    support_rep_id: Mapped[int | None] = mapped_column(ForeignKey("employee.employee_id"), index=True)

    support_rep: Mapped[Employee | None] = relationship()
    invoices: Mapped[list[Invoice]] = relationship(back_populates="customer", order_by="Invoice.invoice_id")

    def __repr__(self) -> str:
        return f"Customer({self.customer_id}, {self.first_name!r} {self.last_name!r})"


class Invoice(Base):
    __tablename__ = "invoice"

    invoice_id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.customer_id"), index=True)
    invoice_date: Mapped[datetime] = mapped_column(Timestamp)
    billing_address: Mapped[str | None]
    billing_city: Mapped[str | None]
    billing_state: Mapped[str | None]
    billing_country: Mapped[str | None]
    billing_postal_code: Mapped[str | None]
    total: Mapped[Decimal] = mapped_column(Money)

    customer: Mapped[Customer] = relationship(back_populates="invoices")
    lines: Mapped[list[InvoiceLine]] = relationship(back_populates="invoice",
                                                    order_by="InvoiceLine.invoice_line_id")

    def __repr__(self) -> str:
        return f"Invoice({self.invoice_id}, total={self.total})"


class InvoiceLine(Base):
    __tablename__ = "invoice_line"

    invoice_line_id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.invoice_id"), index=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("track.track_id"), index=True)
    unit_price: Mapped[Decimal] = mapped_column(Money)
    quantity: Mapped[int]

    invoice: Mapped[Invoice] = relationship(back_populates="lines")
    track: Mapped[Track] = relationship()

    def __repr__(self) -> str:
        return f"InvoiceLine({self.invoice_line_id}, track={self.track_id}, quantity={self.quantity})"


class Playlist(Base):
    __tablename__ = "playlist"

    playlist_id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str | None]

    tracks: Mapped[list[Track]] = relationship(secondary=playlist_track, back_populates="playlists",
                                               order_by="Track.track_id")

    def __repr__(self) -> str:
        return f"Playlist({self.playlist_id}, {self.name!r})"
